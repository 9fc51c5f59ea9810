"""The notify service with fakes: exactly once per job and outcome, and what each mail failure leads to."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from vid2mp3.bootstrap import bootstrap_notify
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.mail import MailerMisconfigured, TransientMailError, UndeliverableRecipient
from vid2mp3.mail.memory import MemoryMailer
from vid2mp3.notify import Completed, Failed
from vid2mp3.notify.memory import MemoryNotificationLog
from vid2mp3.notify.service import NotifyDeps, Outcome, notify
from vid2mp3.settings import load_settings

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def mailer():
    return MemoryMailer()


@pytest.fixture
def records():
    return MemoryNotificationLog(clock=lambda: NOW)


@pytest.fixture
def deps(mailer, records) -> NotifyDeps:
    settings = load_settings({"PUBLIC_BASE_URL": "https://api.example.com/v1", "MAIL_FROM": "v <n@mail.example>"})
    return bootstrap_notify(settings, records=records, mailer=mailer, clock=lambda: NOW)


def completed(job_id=None, **changes):
    values = dict(job_id=job_id or str(uuid.uuid4()), email="ada@example.com", filename="holiday.mp4",
                  mp3_size=1234, duration_s=61.0, bitrate="192k", correlation_id="corr-1")
    values.update(changes)
    return Completed(**values)


def failed(job_id=None):
    return Failed(job_id=job_id or str(uuid.uuid4()), email="ada@example.com", filename="holiday.mp4",
                  error_code="bad", error_message="No audio.", correlation_id="corr-1")


def test_sends_once_and_records_it(deps, mailer, records):
    n = completed()
    assert notify(n, deps) is Outcome.SENT
    [message] = mailer.outbox
    assert message["To"] == "ada@example.com"
    assert f"https://api.example.com/v1/videos/{n.job_id}/mp3" in message.get_body(("plain",)).get_content()
    record = records.get(n.job_id, "completed")
    assert record.status == "sent" and record.attempts == 1 and record.sent_at == NOW
    assert record.message_id == message["Message-ID"] and record.message_id.endswith("@mail.example>")


def test_a_redelivery_sends_nothing_more(deps, mailer):
    n = completed()
    notify(n, deps)
    assert notify(n, deps) is Outcome.ALREADY_DONE
    assert notify(n, deps) is Outcome.ALREADY_DONE
    assert len(mailer.outbox) == 1


def test_completion_and_failure_of_the_same_job_are_two_notifications(deps, mailer):
    job_id = str(uuid.uuid4())
    assert notify(completed(job_id), deps) is Outcome.SENT
    assert notify(failed(job_id), deps) is Outcome.SENT
    assert [m["Subject"] for m in mailer.outbox] == ["Your MP3 is ready", "We could not convert your video"]


def test_a_transient_failure_raises_keeps_the_record_pending_and_the_retry_sends_once(deps, mailer, records):
    n = completed()
    mailer.fail_next(TransientMailError("451 try later", smtp_code=451))
    with pytest.raises(DependencyUnavailable):
        notify(n, deps)
    record = records.get(n.job_id, "completed")
    assert record.status == "pending" and record.attempts == 1 and record.smtp_code == 451
    assert "451" in record.last_error

    assert notify(n, deps) is Outcome.SENT
    assert notify(n, deps) is Outcome.ALREADY_DONE
    [message] = mailer.outbox
    record = records.get(n.job_id, "completed")
    assert record.status == "sent" and record.attempts == 2
    assert message["Message-ID"] == record.message_id  # the id chosen at the first attempt


def test_an_undeliverable_recipient_is_recorded_and_not_retried(deps, mailer, records):
    n = completed()
    mailer.fail_next(UndeliverableRecipient("550 no such user", smtp_code=550))
    assert notify(n, deps) is Outcome.UNDELIVERABLE
    record = records.get(n.job_id, "completed")
    assert record.status == "undeliverable" and record.smtp_code == 550 and "550" in record.last_error
    assert notify(n, deps) is Outcome.ALREADY_DONE
    assert mailer.outbox == [] and mailer.attempts == 1


def test_an_address_no_server_could_take_is_undeliverable_without_trying(deps, mailer, records):
    n = completed(email="a@b.com\r\nBcc: x@y.z")
    assert notify(n, deps) is Outcome.UNDELIVERABLE
    assert mailer.attempts == 0
    assert records.get(n.job_id, "completed").status == "undeliverable"


def test_a_misconfigured_mailer_raises_and_is_not_blamed_on_the_recipient(deps, mailer, records):
    n = completed()
    mailer.fail_next(MailerMisconfigured("535 authentication failed", smtp_code=535))
    with pytest.raises(MailerMisconfigured):
        notify(n, deps)
    assert records.get(n.job_id, "completed").status == "pending"


def test_an_unexpected_error_rolls_the_claim_back(deps, records, monkeypatch):
    def boom(message):
        raise RuntimeError("bug")

    monkeypatch.setattr(deps.mailer, "send", boom)
    n = completed()
    with pytest.raises(RuntimeError):
        notify(n, deps)
    assert records.get(n.job_id, "completed") is None


def test_two_concurrent_deliveries_send_one_email(deps, mailer):
    n = completed()
    started = threading.Event()
    real_send = mailer.send

    def slow_send(message):
        started.set()
        time.sleep(0.2)
        real_send(message)

    mailer.send = slow_send  # type: ignore[method-assign]
    results: list[Outcome] = []
    threads = [threading.Thread(target=lambda: results.append(notify(n, deps))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Outcome.SENT, Outcome.ALREADY_DONE])
    assert len(mailer.outbox) == 1
