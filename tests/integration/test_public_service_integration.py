"""The public service's rules against the real services: PostgreSQL (expiry to the second, usage and
rate limits, token versions, webhook records), a MongoDB-wire server (GridFS), and a real HTTP receiver
on 127.0.0.1 that verifies every webhook's signature; host names resolved by the system's resolver."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.receiver import receiver
from vid2mp3.auth.identity import Identity, check_session
from vid2mp3.auth.users import PostgresUserRepository
from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import PayloadTooLarge, TooManyRequests, Unauthorized
from vid2mp3.jobs import Job, Mp3Info
from vid2mp3.jobs.postgres import PostgresJobRepository
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET
from vid2mp3.objectstore.gridfs import GridFSStore
from vid2mp3.quotas.postgres import PostgresRateLimiter, PostgresUsageStore
from vid2mp3.quotas.service import Quotas, check_upload
from vid2mp3.settings import load_settings
from vid2mp3.uploads import Upload
from vid2mp3.uploads.postgres import PostgresUploadRepository
from vid2mp3.webhooks.records import PostgresDeliveryLog
from vid2mp3.webhooks.service import Outcome, WebhookDeps, WebhookRequest, deliver
from vid2mp3.webhooks.targets import ForbiddenTarget, check_callback_url, parse_allowed_hosts
from vid2mp3.webhooks.transport import Urllib3Transport

pytestmark = pytest.mark.integration

LOOPBACK = parse_allowed_hosts("127.0.0.0/8")


@pytest.fixture
def db(pg_url: str):
    d = Postgres(pg_url)
    yield d
    d.close()


def new_user(db: Postgres) -> tuple[str, str]:
    user = PostgresUserRepository(db).add(f"u-{uuid.uuid4().hex[:12]}@example.com", "$argon2id$not-a-real-hash")
    return str(user.id), user.webhook_secret


def make_job(owner: str, **kw: Any) -> Job:
    now = datetime.now(UTC)
    values: dict[str, Any] = dict(id=str(uuid.uuid4()), owner_id=owner, owner_email="a@example.com",
                                  filename="clip.wav", content_type="audio/wav", size=1000, sha256=None,
                                  video_id=str(uuid.uuid4()), bitrate="192k", correlation_id="corr-12345678",
                                  created_at=now, updated_at=now)
    values.update(kw)
    return Job(**values)


def done_job(repo: PostgresJobRepository, owner: str, **kw: Any) -> Job:
    job = make_job(owner, **kw)
    repo.create(job)
    assert repo.start_conversion(job.id) is not None
    assert repo.mark_done(job.id, Mp3Info(job.id, 500, 2.0, "192k"))
    found = repo.get(job.id)
    assert found is not None
    return found


# --- retention -----------------------------------------------------------------------------------


def test_a_job_one_second_before_its_expiry_survives_and_expires_on_the_second(db):
    repo = PostgresJobRepository(db, retention_s=3600)
    owner, _ = new_user(db)
    job = done_job(repo, owner)
    assert job.expires_at is not None and job.updated_at is not None
    assert abs((job.expires_at - job.updated_at).total_seconds() - 3600) < 1
    assert repo.expire(job.expires_at - timedelta(seconds=1)) == []
    assert repo.get(job.id) is not None
    expired = repo.expire(job.expires_at)
    assert [j.id for j in expired] == [job.id]
    assert repo.get(job.id) is None  # hidden at once (marked), the row goes once its files have
    assert repo.expire(job.expires_at + timedelta(days=1)) == []  # never handed out twice


def test_expiry_goes_in_bounded_batches_oldest_first(db):
    repo = PostgresJobRepository(db, retention_s=60)
    owner, _ = new_user(db)
    jobs = [done_job(repo, owner) for _ in range(5)]
    later = max(j.expires_at for j in jobs if j.expires_at) + timedelta(seconds=1)
    first = repo.expire(later, limit=2)
    assert len(first) == 2 and len(repo.expire(later, limit=10)) >= 3


def test_a_job_past_its_expiry_is_gone_for_its_owner_before_any_sweep(db):
    repo = PostgresJobRepository(db, retention_s=1)
    owner, _ = new_user(db)
    job = done_job(repo, owner)
    with db.transaction() as conn:
        conn.execute("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = %s", (job.id,))
    assert repo.get(job.id, owner) is None
    assert repo.list_for_owner(owner, 10, None) == []


# --- quotas --------------------------------------------------------------------------------------


def test_usage_counts_kept_videos_mp3s_and_unfinished_uploads(db):
    owner, _ = new_user(db)
    repo = PostgresJobRepository(db)
    uploads = PostgresUploadRepository(db)
    kept = done_job(repo, owner, size=1000)  # video 1000 + MP3 500
    removed = done_job(repo, owner, size=7000)
    repo.mark_source_removed(removed.id)  # only its MP3 (500) counts
    repo.create(make_job(owner, size=300))  # queued: active, 300 stored
    now = datetime.now(UTC)
    uploads.create(Upload(id=str(uuid.uuid4()), owner_id=owner, owner_email="a@example.com", length=10_000,
                          filename="big.mkv", content_type="video/x-matroska", bitrate="192k",
                          correlation_id="corr-12345678", created_at=now, expires_at=now + timedelta(hours=1)))
    usage = PostgresUsageStore(db).usage(owner)
    assert usage.storage_bytes == 1500 + 500 + 300 + 10_000
    assert usage.active_jobs == 2  # the queued job and the unfinished upload
    assert usage.next_expiry == kept.expires_at


def test_quotas_refuse_over_each_limit_naming_it(db):
    owner, _ = new_user(db)
    settings = load_settings({"QUOTA_STORAGE_BYTES": "5000", "QUOTA_ACTIVE_JOBS": "2",
                              "QUOTA_UPLOADS_PER_HOUR": "3"})
    quotas = Quotas(settings, PostgresUsageStore(db), PostgresRateLimiter(db))
    with pytest.raises(PayloadTooLarge) as too_big:
        check_upload(quotas, owner, 5001)
    assert too_big.value.code == "storage_quota_exceeded" and "5000" in too_big.value.message
    for _ in range(3):
        check_upload(quotas, owner, 10)
    with pytest.raises(TooManyRequests) as rate:
        check_upload(quotas, owner, 10)
    assert rate.value.code == "upload_rate_exceeded" and 3590 <= rate.value.retry_after <= 3600
    repo = PostgresJobRepository(db)
    for _ in range(2):
        repo.create(make_job(owner))
    with pytest.raises(TooManyRequests) as active:
        check_upload(quotas, owner, 10)
    assert active.value.code == "active_jobs_quota_exceeded"


def test_the_rate_limiter_admits_exactly_the_limit_under_concurrency(db, pg_url):
    key = str(uuid.uuid4())
    admitted: list[bool] = []
    now = datetime.now(UTC)

    def hit() -> None:
        own = Postgres(pg_url)
        try:
            admitted.append(PostgresRateLimiter(own).hit("test", key, 5, 3600, now) is None)
        finally:
            own.close()

    threads = [threading.Thread(target=hit) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 5


# --- sessions ------------------------------------------------------------------------------------


def test_a_password_change_bumps_the_version_and_a_deletion_ends_the_account(db):
    users = PostgresUserRepository(db)
    owner, _ = new_user(db)
    caller = Identity(owner, "a@example.com", 0)
    assert check_session(caller, users) == caller
    changed = users.change_password(uuid.UUID(owner), "$argon2id$another")
    assert changed is not None and changed.token_version == 1
    with pytest.raises(Unauthorized) as revoked:
        check_session(caller, users)
    assert revoked.value.code == "token_revoked"
    assert check_session(Identity(owner, "a@example.com", 1), users)
    assert users.delete(uuid.UUID(owner))
    with pytest.raises(Unauthorized) as gone:
        check_session(Identity(owner, "a@example.com", 1), users)
    assert gone.value.code == "account_deleted"


# --- webhooks ------------------------------------------------------------------------------------


def webhook_deps(db: Postgres, allowed: str = "127.0.0.0/8", **kw: Any) -> WebhookDeps:
    users = PostgresUserRepository(db)

    def secret(owner: str) -> str | None:
        user = users.get(uuid.UUID(owner))
        return user.webhook_secret if user else None

    return WebhookDeps(jobs=PostgresJobRepository(db), secrets=secret, log=PostgresDeliveryLog(db),
                       transport=Urllib3Transport(read_timeout_s=2), allowed=parse_allowed_hosts(allowed), **kw)


def test_a_receiver_answering_500_then_200_gets_exactly_one_successful_signed_delivery(db):
    owner, secret = new_user(db)
    repo = PostgresJobRepository(db)
    clock = [datetime.now(UTC)]
    with receiver(secret, answers=[500]) as hook:
        job = done_job(repo, owner, callback_url=hook.url)
        d = webhook_deps(db, clock=lambda: clock[0])
        request = WebhookRequest(job.id, "completed")
        assert deliver(request, d) == Outcome.RETRY
        assert deliver(request, d) == Outcome.NOT_DUE  # a duplicate message before the retry is due
        clock[0] += timedelta(minutes=2)
        assert deliver(request, d) == Outcome.DELIVERED
        assert deliver(request, d) == Outcome.ALREADY_DONE
        assert [(r.answered, r.verified) for r in hook.received] == [(500, True), (200, True)]
    record = PostgresDeliveryLog(db).for_job(job.id)[0]
    assert record.status == "delivered" and [a.status for a in record.attempts] == [500, 200]


def test_at_most_three_tries_then_failed(db):
    owner, secret = new_user(db)
    with receiver(secret, answers=[503, 502, 500, 500]) as hook:
        job = done_job(PostgresJobRepository(db), owner, callback_url=hook.url)
        clock = [datetime.now(UTC)]
        d = webhook_deps(db, clock=lambda: clock[0])
        outcomes = []
        for _ in range(4):
            outcomes.append(deliver(WebhookRequest(job.id, "completed"), d))
            clock[0] += timedelta(minutes=10)
        assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.FAILED, Outcome.ALREADY_DONE]
        assert len(hook.received) == 3


def test_concurrent_duplicates_deliver_once(db, pg_url):
    owner, secret = new_user(db)
    with receiver(secret) as hook:
        job = done_job(PostgresJobRepository(db), owner, callback_url=hook.url)
        results: list[Outcome] = []

        def run() -> None:
            own = Postgres(pg_url)
            try:
                results.append(deliver(WebhookRequest(job.id, "completed"), webhook_deps(own)))
            finally:
                own.close()

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == sorted([Outcome.DELIVERED] + [Outcome.ALREADY_DONE] * 3)
        assert len(hook.received) == 1


def test_redirects_are_not_followed_and_fail_the_delivery(db):
    owner, _ = new_user(db)
    followed: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            followed.append(self.path)
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = done_job(PostgresJobRepository(db), owner, callback_url=url)
        assert deliver(WebhookRequest(job.id, "completed"), webhook_deps(db)) == Outcome.FAILED
        assert followed == ["/hook"]
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_is_refused_after_dns_resolution_unless_allowed(db):
    for url in ("http://localhost:9/hook", "http://127.0.0.1:9/hook", "http://[::1]:9/hook",
                "http://[::ffff:127.0.0.1]:9/hook"):
        with pytest.raises(ForbiddenTarget):
            check_callback_url(url, parse_allowed_hosts(""))
    assert check_callback_url("http://localhost:9/hook", parse_allowed_hosts("localhost"))
    owner, secret = new_user(db)
    with receiver(secret) as hook:  # allowed when the job was made, not any more when it is delivered
        job = done_job(PostgresJobRepository(db), owner, callback_url=hook.url.replace("127.0.0.1", "localhost"))
        assert deliver(WebhookRequest(job.id, "completed"), webhook_deps(db, allowed="")) == Outcome.FAILED
        assert hook.received == []
    record = PostgresDeliveryLog(db).for_job(job.id)[0]
    assert record.status == "failed" and "non-public" in (record.attempts[0].error or "")


def test_no_delivery_for_a_deleted_account_or_job(db):
    owner, secret = new_user(db)
    repo = PostgresJobRepository(db)
    with receiver(secret) as hook:
        job = done_job(repo, owner, callback_url=hook.url)
        repo.mark_owner_deleted(owner)
        assert deliver(WebhookRequest(job.id, "completed"), webhook_deps(db)) == Outcome.SKIPPED
        assert hook.received == []


# --- GridFS: the objects of an expired job go, those of a later one stay --------------------------


def test_expired_jobs_files_go_with_them(db, mongo_uri):
    from aws_lambda_powertools import Logger

    from tests.support.apigw import fake_probe
    from vid2mp3.jobs.service import JobsDeps, expire_jobs
    from vid2mp3.queue.memory import InMemoryPublisher

    store = GridFSStore(mongo_uri, f"t{uuid.uuid4().hex[:8]}")
    repo = PostgresJobRepository(db, retention_s=3600)
    owner, _ = new_user(db)
    jobs = [done_job(repo, owner) for _ in range(2)]
    for job in jobs:
        store.put(VIDEOS_BUCKET, job.video_id, io.BytesIO(b"v" * 100), filename="v", metadata={})
        store.put(MP3S_BUCKET, job.id, io.BytesIO(b"m" * 100), filename="m.mp3", metadata={})
    expiring, staying = jobs
    with db.transaction() as conn:
        conn.execute("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = %s", (expiring.id,))
    d = JobsDeps(settings=load_settings({}), jobs=repo, store=store, publisher=InMemoryPublisher(),
                 logger=Logger(service="test"), probe=fake_probe)
    assert expiring.id in expire_jobs(d)
    assert store.stat(MP3S_BUCKET, expiring.id) is None and store.stat(VIDEOS_BUCKET, expiring.video_id) is None
    assert store.stat(MP3S_BUCKET, staying.id) is not None and repo.get(staying.id) is not None
    store.close()
