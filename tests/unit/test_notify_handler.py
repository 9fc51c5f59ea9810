"""The notify handler (functions/notify/app.py) with fakes, fed the exact event the bridge builds."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from infra.bridge import Message, build_rmq_event
from vid2mp3.bootstrap import bootstrap_notify
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs import Job, Mp3Info, completed_event, failed_event
from vid2mp3.mail import TransientMailError
from vid2mp3.mail.memory import MemoryMailer
from vid2mp3.notify.memory import MemoryNotificationLog
from vid2mp3.notify.service import NotifyDeps
from vid2mp3.settings import load_settings

APP_PY = Path(__file__).resolve().parents[2] / "functions" / "notify" / "app.py"
BROKER = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-local:b-1"


@pytest.fixture(scope="module")
def notify_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notify_app_under_test", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def deps(notify_app, monkeypatch) -> NotifyDeps:
    d = bootstrap_notify(load_settings({"PUBLIC_BASE_URL": "https://api.example.com/v1"}),
                         records=MemoryNotificationLog(), mailer=MemoryMailer())
    monkeypatch.setattr(notify_app, "deps", lambda: d)
    return d


def job() -> Job:
    now = datetime.now(UTC)
    return Job(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="ada@example.com",
               filename="holiday.mp4", content_type="video/mp4", size=1000, sha256="0" * 64, video_id="v1",
               bitrate="192k", correlation_id=f"corr-{uuid.uuid4().hex[:8]}", created_at=now, updated_at=now)


def event(queue: str, *bodies: object) -> dict:
    messages = [
        Message(body=b if isinstance(b, bytes) else json.dumps(b).encode(),
                properties=SimpleNamespace(correlation_id=None, content_type="application/json"),
                redelivered=False)
        for b in bodies
    ]
    return build_rmq_event(BROKER, queue, "/", messages)


def test_a_batch_of_completions_sends_one_email_each(notify_app, deps):
    jobs = [job() for _ in range(3)]
    bodies = [completed_event(j, Mp3Info("m", 1000, 10.0, "192k")) for j in jobs]
    assert notify_app.handler(event("conversion_completed", *bodies), None) == {"sent": 3}
    assert sorted(m["X-Vid2mp3-Job-Id"] for m in deps.mailer.outbox) == sorted(j.id for j in jobs)
    assert {m["X-Correlation-Id"] for m in deps.mailer.outbox} == {j.correlation_id for j in jobs}


def test_redelivering_the_batch_sends_nothing_more(notify_app, deps):
    body = failed_event(job(), "unsupported_media", "No audio.")
    assert notify_app.handler(event("conversion_failed", body), None) == {"sent": 1}
    assert notify_app.handler(event("conversion_failed", body), None) == {"already_done": 1}
    assert len(deps.mailer.outbox) == 1


def test_a_transient_mail_error_fails_the_invocation(notify_app, deps):
    bodies = [completed_event(job(), Mp3Info("m", 1000, 10.0, "192k")) for _ in range(2)]
    deps.mailer.fail_next(TransientMailError("451 try later", smtp_code=451))
    with pytest.raises(DependencyUnavailable):
        notify_app.handler(event("conversion_completed", *bodies), None)
    # the broker redelivers the whole batch: both are sent, once
    assert notify_app.handler(event("conversion_completed", *bodies), None) == {"sent": 2}
    assert len(deps.mailer.outbox) == 2


def test_a_message_that_is_not_a_conversion_event_is_skipped(notify_app, deps):
    good = completed_event(job(), Mp3Info("m", 1000, 10.0, "192k"))
    result = notify_app.handler(event("conversion_completed", b"garbage", {"job_id": "x"}, good), None)
    assert result == {"invalid": 2, "sent": 1}
    assert len(deps.mailer.outbox) == 1


def test_an_event_of_another_kind_is_an_error(notify_app, deps):
    with pytest.raises(ValueError):
        notify_app.handler({"Records": [{"body": "{}"}]}, None)
