"""The JobRepository contract, against real PostgreSQL and against the in-memory fake (same rules)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict
from vid2mp3.jobs import Job, Mp3Info, conversion_message
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.jobs.postgres import PostgresJobRepository

pytestmark = pytest.mark.integration


def make_job(owner: str | None = None, *, age_s: float = 0.0, **kw) -> Job:
    now = datetime.now(UTC) - timedelta(seconds=age_s)
    values = dict(
        id=str(uuid.uuid4()), owner_id=owner or str(uuid.uuid4()), owner_email="a@example.com",
        filename="clip.mp4", content_type="video/mp4", size=1234, sha256="ab" * 32,
        video_id=str(uuid.uuid4()), bitrate="192k", correlation_id="corr-12345678",
        created_at=now, updated_at=now, duration_s=3.5, extra={"format": "mov,mp4,m4a,3gp,3g2,mj2"},
    )
    values.update(kw)
    return Job(**values)  # type: ignore[arg-type]


MP3 = Mp3Info(object_id="mp3-1", size=4321, duration_s=3.49, bitrate="192k")


@pytest.fixture(params=["postgres", "memory"])
def repo(request):
    if request.param == "memory":
        yield InMemoryJobRepository()
        return
    db = Postgres(request.getfixturevalue("pg_url"))
    yield PostgresJobRepository(db)
    db.close()


def test_create_get_round_trip_and_ownership(repo):
    job = make_job()
    repo.create(job)
    got = repo.get(job.id)
    assert got is not None
    assert (got.id, got.owner_id, got.filename, got.size, got.sha256, got.video_id, got.bitrate) == (
        job.id, job.owner_id, job.filename, job.size, job.sha256, job.video_id, job.bitrate)
    assert got.status == "queued" and got.published_at is None and got.mp3 is None
    assert got.extra == job.extra and got.duration_s == 3.5
    assert abs((got.created_at - job.created_at).total_seconds()) < 1e-3
    assert conversion_message(got) == conversion_message(job)
    assert repo.get(job.id, job.owner_id) is not None
    assert repo.get(job.id, str(uuid.uuid4())) is None  # someone else's
    assert repo.get(str(uuid.uuid4())) is None  # unknown
    for bad in ("not-a-uuid", "", "1; DROP TABLE jobs", job.id + "x"):
        assert repo.get(bad) is None
        assert repo.get(job.id, bad) is None
    with pytest.raises(Conflict):
        repo.create(job)


def test_list_newest_first_with_keyset_pages(repo):
    owner = str(uuid.uuid4())
    jobs = [make_job(owner, age_s=100 - i) for i in range(5)]
    same_instant = jobs[0].created_at
    twins = [make_job(owner, created_at=same_instant, updated_at=same_instant) for _ in range(2)]
    for j in [*jobs, *twins]:
        repo.create(j)
    repo.create(make_job())  # another owner's
    seen: list[str] = []
    after = None
    while True:
        page = repo.list_for_owner(owner, 2, after)
        if not page:
            break
        seen += [j.id for j in page]
        after = (page[-1].created_at, page[-1].id)
    expected = sorted([*jobs, *twins], key=lambda j: (j.created_at, uuid.UUID(j.id)), reverse=True)
    assert seen == [j.id for j in expected]
    assert repo.list_for_owner("nope", 10, None) == []


def test_transitions_are_one_way(repo):
    job = make_job()
    repo.create(job)
    started = repo.start_conversion(job.id)
    assert started is not None and started.status == "converting"
    assert started.published_at is not None  # delivered, so it was published
    repo.set_progress(job.id, 40)
    got = repo.get(job.id)
    assert got is not None and got.progress == 40
    assert got.to_api()["progress"] == 40
    repo.set_progress(job.id, 400)
    got = repo.get(job.id)
    assert got is not None and got.progress == 100
    # A redelivery of the same message may restart it while it is converting...
    assert repo.start_conversion(job.id) is not None
    assert repo.mark_done(job.id, MP3) is True
    # ...but nothing moves a finished job.
    assert repo.mark_done(job.id, MP3) is False
    assert repo.mark_failed(job.id, "x", "y") is False
    assert repo.start_conversion(job.id) is None
    repo.set_progress(job.id, 5)
    done = repo.get(job.id)
    assert done is not None and done.status == "done" and done.mp3 == MP3 and done.progress == 100
    assert done.to_api()["mp3"] == {"size": 4321, "duration_s": 3.49, "bitrate": "192k"}

    failed = make_job()
    repo.create(failed)
    assert repo.mark_failed(failed.id, "not_media", "Not a media file.") is True
    assert repo.mark_done(failed.id, MP3) is False
    got = repo.get(failed.id)
    assert got is not None and got.status == "failed"
    assert got.to_api()["error"] == {"code": "not_media", "message": "Not a media file."}

    for bad in ("bogus", str(uuid.uuid4())):
        assert repo.start_conversion(bad) is None
        assert repo.mark_done(bad, MP3) is False
        assert repo.mark_failed(bad, "c", "m") is False
        repo.set_progress(bad, 10)
        repo.mark_published(bad)


def test_unpublished_and_claims(repo):
    stranded = make_job(age_s=600)
    fresh = make_job()
    confirmed = make_job(age_s=600)
    for j in (stranded, fresh, confirmed):
        repo.create(j)
    repo.mark_published(confirmed.id)
    got = repo.get(confirmed.id)
    assert got is not None and got.published_at is not None
    ids = {j.id for j in repo.unpublished(300, limit=1000)}
    assert stranded.id in ids and fresh.id not in ids and confirmed.id not in ids
    claimed = {j.id for j in repo.claim_unpublished(300, limit=1000)}
    assert stranded.id in claimed and fresh.id not in claimed and confirmed.id not in claimed
    # Claimed: not handed out again within the window, though still unpublished.
    assert stranded.id not in {j.id for j in repo.claim_unpublished(300, limit=1000)}
    assert stranded.id in {j.id for j in repo.unpublished(300, limit=1000)}
    repo.mark_published(stranded.id)
    assert stranded.id not in {j.id for j in repo.unpublished(0, limit=1000)}
    # A job that started converting is never re-driven.
    started = make_job(age_s=600)
    repo.create(started)
    repo.start_conversion(started.id)
    assert started.id not in {j.id for j in repo.claim_unpublished(0, limit=1000)}


def test_delete_marks_then_removes(repo):
    job = make_job()
    repo.create(job)
    assert repo.mark_deleted(job.id, str(uuid.uuid4())) is None  # not the owner
    marked = repo.mark_deleted(job.id, job.owner_id)
    assert marked is not None and marked.id == job.id
    # Invisible, and every transition refused from now on.
    assert repo.get(job.id) is None
    assert repo.list_for_owner(job.owner_id, 10, None) == []
    assert repo.start_conversion(job.id) is None
    assert repo.mark_done(job.id, MP3) is False
    assert job.id in {j.id for j in repo.deleting(-60)}
    assert job.id not in {j.id for j in repo.deleting(600)}
    assert repo.mark_deleted(job.id, job.owner_id) is not None  # a retry finishes the clean-up
    assert repo.delete(job.id, job.owner_id) is not None
    assert repo.delete(job.id, job.owner_id) is None
    assert repo.mark_deleted(job.id, job.owner_id) is None
    assert repo.mark_deleted("bogus", job.owner_id) is None


def test_concurrent_duplicate_deliveries_only_one_wins(pg_url):
    """Many connections finish the same job at once: exactly one mark_done/mark_failed returns True."""
    setup = Postgres(pg_url)
    PostgresJobRepository(setup).create(job := make_job())
    setup.close()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        db = Postgres(pg_url)
        repo = PostgresJobRepository(db)
        repo.start_conversion(job.id)
        barrier.wait()
        ok = repo.mark_done(job.id, MP3) if i % 2 else repo.mark_failed(job.id, "boom", "failed")
        results.append(ok)
        db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_schema_rejects_inconsistent_rows(pg_url):
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO jobs (id, owner_id, owner_email, filename, content_type, size, sha256, video_id, "
            "bitrate, correlation_id, status) VALUES (gen_random_uuid(), gen_random_uuid(), 'a@b.c', 'f', "
            "'video/mp4', 1, %s, 'v', '192k', 'c', 'done')", ("ab" * 32,))
