"""The public service on the deployed template, over HTTP like a stranger who signed up: files expire
and a scheduled run removes them, quotas on both upload paths, the account's password change and
deletion, signed webhooks with retries, registration limits, and the headers on every response.

Where a rule depends on time (an expiry, a webhook's next try), the test moves the stored time in the
stack's PostgreSQL and invokes the scheduled function through the emulator's Lambda API, as
test_tus_e2e does for an expired upload, instead of waiting for the clock.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from tests.e2e.conftest import Stack
from tests.support.api import Account, Api, Reply, new_email
from tests.support.apigw import multipart_body
from tests.support.media import generate_media, large_video
from tests.support.receiver import receiver
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET
from vid2mp3.settings import Settings
from vid2mp3.webhooks.signing import HEADER

pytestmark = pytest.mark.e2e

TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024
DONE_TIMEOUT_S = 120.0
NEW_PASSWORD = "another horse battery staple"


class User(Account):
    finish_timeout_s = DONE_TIMEOUT_S

    def upload(self, path: Path, **fields: str) -> Reply:
        body, ctype = multipart_body(path.read_bytes(), filename=path.name, fields=fields or None)
        return self.call("POST", "/videos", raw=body, headers={"Content-Type": ctype})

    def create_upload(self, length: int, **metadata: str) -> Reply:
        pairs = {"filename": "big.mkv", **metadata}
        encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())
        return self.call("POST", "/uploads", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": encoded})

    def usage(self) -> dict[str, Any]:
        reply = self.call("GET", "/auth/me")
        assert reply.status == 200, reply.raw
        return dict(reply.body["usage"])


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_media(tmp_path_factory.mktemp("public-media"))


@pytest.fixture
def user(api_url: str) -> User:
    return User(Api(api_url))


@pytest.fixture(scope="module")
def mongo(stack: Stack) -> Iterator[Any]:
    with pymongo.MongoClient(stack.parameters["MongodbUri"]) as client:
        yield client["vid2mp3"]


def sql(stack: Stack, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.parameters["DatabaseUrl"], autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def scheduled_run(stack: Stack) -> dict[str, Any]:
    return stack.invoke("RedriveFunction", {"id": "e2e-public", "source": "aws.events",
                                            "detail-type": "Scheduled Event"})


def stored(mongo: Any, bucket: str, object_id: str) -> bool:
    return mongo[f"{bucket}.files"].count_documents({"_id": object_id}) > 0


# --- retention -----------------------------------------------------------------------------------


def test_a_finished_job_expires_and_one_scheduled_run_removes_it_but_not_a_job_expiring_later(
        user, stack, mongo, media):
    first = user.upload(media["wav"]).body["id"]
    second = user.upload(media["mkv"]).body["id"]
    jobs = {job_id: user.wait_finished(job_id) for job_id in (first, second)}
    for job in jobs.values():
        assert job["status"] == "done", job
        finished = datetime.fromisoformat(job["updated_at"])
        expires = datetime.fromisoformat(job["expires_at"])  # RETENTION_HOURS (72) after it finished
        assert abs((expires - finished).total_seconds() - 72 * 3600) < 60
    # KEEP_SOURCE is off: the video went once the MP3 was committed; the MP3 is there.
    assert not stored(mongo, VIDEOS_BUCKET, sql(stack, "SELECT video_id FROM jobs WHERE id = %s", first)[0][0])
    assert stored(mongo, MP3S_BUCKET, first)
    # A large download's export copy goes with the job as well: ask for one (a link makes it).
    assert user.call("GET", f"/videos/{first}/mp3", headers={"Accept": "application/json"}).status == 200

    sql(stack, "UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = %s", first)
    sql(stack, "UPDATE jobs SET expires_at = now() + interval '1 minute' WHERE id = %s", second)
    assert user.call("GET", f"/videos/{first}").status == 404  # expired: gone at once, like a deleted one
    assert first not in {j["id"] for j in user.call("GET", "/videos").body["items"]}
    result = scheduled_run(stack)
    assert result["jobs_expired"] >= 1
    assert not stored(mongo, MP3S_BUCKET, first)
    assert sql(stack, "SELECT count(*) FROM jobs WHERE id = %s", first)[0][0] == 0
    assert user.call("GET", f"/videos/{first}/mp3", headers={"Accept": "audio/mpeg"}).status == 404
    # The job expiring a minute later is untouched, files and all.
    assert user.call("GET", f"/videos/{second}").status == 200
    assert stored(mongo, MP3S_BUCKET, second)
    assert user.call("GET", f"/videos/{second}/mp3", headers={"Accept": "audio/mpeg"}).status == 200


def test_the_email_says_until_when_the_link_works_and_the_metrics_are_in_the_log(user, stack, media):
    job_id = user.upload(media["wav"]).body["id"]
    job = user.wait_finished(job_id)
    # The convert function's log (CloudWatch Logs, the emulator's) has its embedded-metric-format lines,
    # written when the invocation ends (just after the job is done).
    deadline = time.monotonic() + 30
    while True:
        emf = [json.loads(line[line.index("{"):]) for line in stack.log_lines("ConvertFunction")
               if '"CloudWatchMetrics"' in line]
        if any(doc.get("BytesIn") == [job["size"]] for doc in emf) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # EMF keeps each metric's values in a list.
    assert any(doc.get("BytesIn") == [job["size"]] and doc.get("BytesOut") == [job["mp3"]["size"]] for doc in emf)
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ConversionsStarted", "ConversionsDone", "ConversionSeconds", "BytesIn", "BytesOut"} <= names
    assert all(d["Namespace"] == "vid2mp3" for doc in emf for d in doc["_aws"]["CloudWatchMetrics"])
    expires = datetime.fromisoformat(job["expires_at"])
    deadline = time.monotonic() + 60
    while True:
        mails = [p for p in stack.mail_dir.glob("*.eml") if job_id.encode() in p.read_bytes()]
        if mails:
            break
        assert time.monotonic() < deadline, "no email"
        time.sleep(0.5)
    text = mails[0].read_bytes().decode("utf-8", "replace").replace("=\r\n", "").replace("=\n", "")
    assert f"The link works until {expires.strftime('%Y-%m-%d %H:%M')} UTC" in text


# --- signed webhooks -----------------------------------------------------------------------------


def test_a_webhook_answered_500_first_is_retried_and_delivered_exactly_once(user, stack, media):
    secret = user.call("GET", "/auth/me").body["webhook_secret"]
    with receiver(secret, answers=[500]) as hook:
        job_id = user.upload(media["wav"], callback_url=hook.url).body["id"]
        first = hook.wait_for(1)[0]
        assert first.answered == 500 and first.verified and first.path == "/hooks/vid2mp3"
        job = user.wait_finished(job_id)
        assert job["callback_url"] == hook.url
        deadline = time.monotonic() + 30
        while not user.call("GET", f"/videos/{job_id}").body["webhook"]["deliveries"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        shown = user.call("GET", f"/videos/{job_id}").body["webhook"]["deliveries"][0]
        assert shown["status"] == "pending" and [a["status"] for a in shown["attempts"]] == [500]
        assert "next_attempt_at" in shown
        # The retry is due (instead of waiting two minutes): one scheduled run sends it again.
        sql(stack, "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE job_id = %s", job_id)
        assert scheduled_run(stack)["webhooks_due"] >= 1
        second = hook.wait_for(2)[1]
        assert second.answered == 200 and second.verified
        # More runs send nothing more: exactly one successful delivery.
        scheduled_run(stack)
        time.sleep(2)
        assert len(hook.received) == 2
    for delivery in (first, second):
        event = delivery.event
        assert event["type"] == "job.done" and event["job"]["id"] == job_id and event["job"]["status"] == "done"
        assert event["job"]["mp3"]["size"] > 0 and event["id"] == first.event["id"]
        assert delivery.headers["Vid2mp3-Event-Id"] == event["id"]
        assert delivery.headers[HEADER].startswith("t=")
    assert first.body == second.body
    shown = user.call("GET", f"/videos/{job_id}").body["webhook"]["deliveries"][0]
    assert shown["status"] == "delivered" and [a["status"] for a in shown["attempts"]] == [500, 200]


def test_a_resumable_upload_with_a_callback_url_in_its_metadata_is_delivered_once(user, media):
    secret = user.call("GET", "/auth/me").body["webhook_secret"]
    data = media["wav"].read_bytes()
    with receiver(secret) as hook:
        created = user.create_upload(len(data), callback_url=hook.url)
        assert created.status == 201, created.raw
        path = created.headers["Location"].removeprefix(user.api.base_url)
        done = user.call("PATCH", path, raw=data, headers={**TUS, "Content-Type": "application/offset+octet-stream",
                                                           "Upload-Offset": "0"})
        assert done.status == 204, done.raw
        job_id = done.headers["Vid2mp3-Job"].rsplit("/", 1)[1]
        delivery = hook.wait_for(1)[0]
        assert delivery.verified and delivery.event["job"]["id"] == job_id
        time.sleep(2)
        assert len(hook.received) == 1
    # A rotated secret signs what comes next; the old one no longer verifies it.
    rotated = user.call("POST", "/auth/webhook-secret")
    assert rotated.status == 200 and rotated.body["webhook_secret"] != secret


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook",
                                 "ftp://example.com/hook", "http://user:pw@example.com/"])
def test_a_callback_url_to_a_forbidden_address_is_refused_at_upload(user, media, url):
    reply = user.upload(media["wav"], callback_url=url)
    assert reply.status == 400 and reply.error_code() == "invalid_callback_url", reply.raw
    reply = user.create_upload(1000, callback_url=url)
    assert reply.status == 400 and reply.error_code() == "invalid_callback_url", reply.raw


# --- quotas --------------------------------------------------------------------------------------


def test_uploads_per_hour_are_limited_on_both_paths_with_retry_after(user, media):
    limit = user.usage()["uploads_per_hour"]["limit"]
    for _ in range(limit):
        created = user.create_upload(1000)
        assert created.status == 201, created.raw
        assert user.call("DELETE", created.headers["Location"].removeprefix(user.api.base_url),
                         headers=TUS).status == 204
    assert user.usage()["uploads_per_hour"]["used"] == limit
    for reply in (user.create_upload(1000), user.upload(media["wav"])):
        assert reply.status == 429 and reply.error_code() == "upload_rate_exceeded", reply.raw
        assert 3000 < int(reply.headers["Retry-After"]) <= 3600
        assert f"{limit} uploads per hour" in reply.body["error"]["message"]


def test_active_jobs_are_limited_on_both_paths(user, media):
    limit = user.usage()["active_jobs"]["limit"]
    for _ in range(limit):  # unfinished uploads count: each becomes a job
        assert user.create_upload(1000).status == 201
    assert user.usage()["active_jobs"]["used"] == limit
    for reply in (user.create_upload(1000), user.upload(media["wav"])):
        assert reply.status == 429 and reply.error_code() == "active_jobs_quota_exceeded", reply.raw
        assert int(reply.headers["Retry-After"]) > 0 and "active jobs" in reply.body["error"]["message"]


def test_storage_is_limited_counting_a_resumable_uploads_whole_length(user, stack):
    usage = user.usage()["storage_bytes"]
    largest = int(user.call("OPTIONS", "/uploads").headers["Tus-Max-Size"])
    remaining = usage["limit"] - usage["used"]
    while remaining > largest:
        assert user.create_upload(largest).status == 201
        remaining -= largest
    assert user.create_upload(remaining - 1000).status == 201
    reply = user.create_upload(1001)
    assert reply.status == 413 and reply.error_code() == "storage_quota_exceeded", reply.raw
    assert str(usage["limit"]) in reply.body["error"]["message"]
    assert user.create_upload(1000).status == 201  # exactly up to the quota is fine
    assert user.usage()["storage_bytes"]["used"] == usage["limit"]


# --- the account's lifecycle ---------------------------------------------------------------------


def test_a_password_change_refuses_every_earlier_token_at_once(user):
    old = user.token
    assert user.call("GET", "/videos").status == 200  # the gateway now caches an Allow for this token
    wrong = user.call("POST", "/auth/password", body={"current_password": "not it at all",
                                                      "new_password": NEW_PASSWORD})
    assert wrong.status == 401 and wrong.error_code() == "invalid_credentials"
    changed = user.call("POST", "/auth/password", body={"current_password": "correct horse battery staple",
                                                        "new_password": NEW_PASSWORD})
    assert changed.status == 200, changed.raw
    for path in ("/videos", "/auth/me"):
        refused = user.api.request("GET", path, token=old)
        assert refused.status == 401 and refused.error_code() == "token_revoked", refused.raw
    user.token = str(changed.body["access_token"])
    assert user.call("GET", "/videos").status == 200
    assert user.api.login(user.email).status == 401
    assert user.api.login(user.email, NEW_PASSWORD).status == 200


def test_deleting_the_account_removes_everything_and_refuses_its_token_at_once(user, stack, mongo, media,
                                                                              tmp_path):
    job_id = user.upload(media["wav"]).body["id"]
    assert user.wait_finished(job_id)["status"] == "done"
    video = large_video(tmp_path / "half.mkv", seconds=4, megabytes=3).read_bytes()
    open_upload = user.create_upload(len(video))
    path = open_upload.headers["Location"].removeprefix(user.api.base_url)
    reply = user.call("PATCH", path, raw=video[:MIB], headers={**TUS, "Content-Type": "application/offset+octet-stream",
                                                               "Upload-Offset": "0"})
    assert reply.status == 204, reply.raw
    upload_id = path.rsplit("/", 1)[1]
    assert mongo["videos.chunks"].count_documents({"files_id": upload_id}) > 0
    assert user.call("DELETE", "/auth/me", body={"password": "wrong password here"}).status == 401
    assert user.call("GET", "/videos").status == 200  # still there

    assert user.call("DELETE", "/auth/me", body={"password": "correct horse battery staple"}).status == 204
    for method, where in (("GET", "/videos"), ("GET", "/auth/me"), ("GET", f"/videos/{job_id}")):
        refused = user.call(method, where)
        assert refused.status == 401 and refused.error_code() == "account_deleted", refused.raw
    assert user.api.login(user.email).status == 401
    assert sql(stack, "SELECT count(*) FROM users WHERE id = %s", user.id)[0][0] == 0
    assert sql(stack, "SELECT count(*) FROM jobs WHERE owner_id = %s", user.id)[0][0] == 0
    assert sql(stack, "SELECT count(*) FROM uploads WHERE owner_id = %s", user.id)[0][0] == 0
    assert not stored(mongo, MP3S_BUCKET, job_id)
    assert mongo["videos.chunks"].count_documents({"files_id": upload_id}) == 0
    assert mongo["videos.files"].count_documents({"metadata.owner_id": user.id}) == 0


# --- abuse limits and headers ----------------------------------------------------------------------


def test_registration_is_limited_per_source_address(api_url, stack):
    limit = int(stack.parameters.get("RegistrationsPerHourPerIp") or Settings().registrations_per_hour_per_ip)
    api = Api(api_url)
    for _ in range(limit):
        assert api.register(new_email()).status == 201
    refused = api.register(new_email())
    assert refused.status == 429 and refused.error_code() == "registration_rate_exceeded", refused.raw
    assert 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert Api(api_url).register(new_email()).status == 201  # another address is not affected


def test_every_response_says_nosniff_and_how_to_cache(user, media):
    job_id = user.upload(media["wav"]).body["id"]
    user.wait_finished(job_id)
    replies = {
        "json": user.call("GET", "/videos"),
        "error": user.call("GET", "/videos/not-a-job"),
        "health": user.api.request("GET", "/health"),
        "mp3": user.call("GET", f"/videos/{job_id}/mp3", headers={"Accept": "audio/mpeg"}),
        "tus": user.create_upload(1000),
        "login": user.api.login(user.email),
    }
    for name, reply in replies.items():
        assert reply.status < 500, (name, reply.raw)
        assert reply.headers.get("X-Content-Type-Options") == "nosniff", name
        assert reply.headers.get("Cache-Control"), name
    assert replies["json"].headers["Cache-Control"] == "no-store"
    assert replies["mp3"].headers["Cache-Control"] == "private, max-age=0, must-revalidate"
