"""Upload use cases: what is left behind when a dependency fails half-way."""

from __future__ import annotations

import pytest

from tests.support.apigw import ALICE, fake_probe, multipart_body
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs import service
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.log import get_logger
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.settings import load_settings


class FlakyJobs(InMemoryJobRepository):
    fail_create = False
    fail_mark_published = False

    def create(self, job):
        if self.fail_create:
            raise DependencyUnavailable("The database is unavailable.")
        super().create(job)

    def mark_published(self, job_id):
        if self.fail_mark_published:
            raise DependencyUnavailable("The database is unavailable.")
        super().mark_published(job_id)


@pytest.fixture
def d():
    return service.JobsDeps(settings=load_settings({}), jobs=FlakyJobs(), store=InMemoryObjectStore(),
                            publisher=InMemoryPublisher(), logger=get_logger("test"), probe=fake_probe)


def upload(d):
    body, ctype = multipart_body(b"MEDIA" + b"x" * 1000)
    return service.upload_video(d, ALICE, [body], ctype, correlation_id="corr-12345678")


def test_store_down_leaves_no_job(d):
    d.store.available = False
    with pytest.raises(DependencyUnavailable):
        upload(d)
    assert d.jobs.rows == {} and d.publisher.messages == []


def test_failed_job_insert_removes_the_video(d):
    d.jobs.fail_create = True
    with pytest.raises(DependencyUnavailable):
        upload(d)
    assert d.store.objects == {} and d.publisher.messages == []


def test_unrecorded_confirm_still_returns_the_job(d):
    d.jobs.fail_mark_published = True
    job = upload(d)
    assert len(d.publisher.messages) == 1
    assert d.jobs.get(job.id) is not None


def test_redrive_stops_at_the_first_unconfirmed_publish(d):
    from datetime import UTC, datetime, timedelta

    d.publisher.available = False
    ids = [upload(d).id for _ in range(3)]
    d.jobs.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)
    result = service.redrive(d)
    assert len(result.unconfirmed) == 1 and result.published == []
    d.publisher.available = True
    # All three were claimed by that run: they wait out the window (the broker was down anyway)...
    assert service.redrive(d).published == []
    d.jobs.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
    # ...and are published once each after it.
    assert len(service.redrive(d).published) == 3
    assert service.redrive(d).published == []
    assert sorted(m.body["job_id"] for m in d.publisher.messages) == sorted(ids)


def test_cursor_round_trip():
    from datetime import UTC, datetime

    from tests.integration.test_jobs_postgres import make_job

    job = make_job(created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    assert service.decode_cursor(service.encode_cursor(job)) == (job.created_at, job.id)
