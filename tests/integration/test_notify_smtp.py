"""The notify handler against a real SMTP server (aiosmtpd, started here) and real PostgreSQL.

The server records every message it accepts and can be told to answer RCPT TO with 451 or 550, as a
greylisting server or one that does not know the mailbox would.
"""

from __future__ import annotations

import asyncio
import email
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from infra import procs
from infra.bridge import Message, build_rmq_event
from vid2mp3.bootstrap import bootstrap_notify
from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs import Job, Mp3Info, completed_event, failed_event
from vid2mp3.notify.records import PostgresNotificationLog
from vid2mp3.notify.service import NotifyDeps
from vid2mp3.settings import load_settings

pytestmark = pytest.mark.integration

APP_PY = Path(__file__).resolve().parents[2] / "functions" / "notify" / "app.py"
BROKER = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-local:b-1"
PUBLIC_BASE_URL = "http://127.0.0.1:4566/_aws/execute-api/abc123/v1"


class RecordingHandler:
    """aiosmtpd handler: keeps each accepted message; `rcpt_reply` (e.g. "451 ...") refuses recipients."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.rcpt_reply: str | None = None
        self.data_delay_s = 0.0
        self.rcpt_attempts = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self.rcpt_attempts += 1
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        raw = envelope.original_content or envelope.content
        self.messages.append(email.message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = procs.free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def notify_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notify_app_integration", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_deps(pg_url: str, port: int) -> NotifyDeps:
    settings = load_settings({
        "DATABASE_URL": pg_url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
        "MAIL_FROM": "vid2mp3 <no-reply@vid2mp3.test>", "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    })
    return bootstrap_notify(settings)


@pytest.fixture
def deps(pg_url, smtp, notify_app, monkeypatch) -> Iterator[NotifyDeps]:
    d = make_deps(pg_url, smtp[1])
    monkeypatch.setattr(notify_app, "deps", lambda: d)
    yield d
    d.records._db.close()  # type: ignore[attr-defined]


def job(filename: str = "holiday.mp4") -> Job:
    now = datetime.now(UTC)
    return Job(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email=f"user-{uuid.uuid4().hex[:6]}@example.com",
               filename=filename, content_type="video/mp4", size=1000, sha256="0" * 64, video_id="v1",
               bitrate="192k", correlation_id=f"corr-{uuid.uuid4().hex[:12]}", created_at=now, updated_at=now)


def event(queue: str, body: dict[str, Any], *, redelivered: bool = False, correlation_id: str | None = None) -> dict:
    props = SimpleNamespace(correlation_id=correlation_id or body.get("correlation_id"),
                            content_type="application/json", delivery_mode=2)
    return build_rmq_event(BROKER, queue, "/", [Message(json.dumps(body).encode(), props, redelivered)])


def row(pg_url: str, job_id: str, kind: str) -> dict[str, Any] | None:
    with psycopg.connect(pg_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM notifications WHERE job_id = %s AND kind = %s", (job_id, kind)).fetchone()


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_a_completion_produces_one_email_with_the_facts_and_link(notify_app, deps, smtp, pg_url):
    server, _ = smtp
    j = job("Fête <2026>.mp4")
    body = completed_event(j, Mp3Info("mp3-1", 4_812_345, 205.4, "192k"))

    assert notify_app.handler(event("conversion_completed", body), None) == {"sent": 1}

    [message] = server.messages
    assert server.envelopes == [("no-reply@vid2mp3.test", [j.owner_email])]
    assert message["To"] == j.owner_email
    assert message["Subject"] == "Your MP3 is ready"
    assert message["X-Correlation-Id"] == j.correlation_id
    text, page = text_and_html(message)
    link = f"{PUBLIC_BASE_URL}/videos/{j.id}/mp3"
    assert "Fête <2026>.mp4" in text and "Fête &lt;2026&gt;.mp4" in page
    assert "4.8 MB" in text and "3:25" in text and "192 kbit/s" in text
    assert link in text and f'href="{link}"' in page
    record = row(pg_url, j.id, "completed")
    assert record is not None and record["status"] == "sent" and record["attempts"] == 1
    assert record["message_id"] == message["Message-ID"]


def test_a_failure_produces_one_email_with_the_reason(notify_app, deps, smtp, pg_url):
    server, _ = smtp
    j = job("clip.mov")
    body = failed_event(j, "no_audio", "The video has no audio track.")

    assert notify_app.handler(event("conversion_failed", body), None) == {"sent": 1}

    [message] = server.messages
    assert message["Subject"] == "We could not convert your video"
    text, page = text_and_html(message)
    assert "clip.mov" in text and "The video has no audio track." in text
    assert "clip.mov" in page and "The video has no audio track." in page
    assert row(pg_url, j.id, "failed")["status"] == "sent"  # type: ignore[index]


def test_a_redelivered_message_sends_nothing_more(notify_app, deps, smtp):
    server, _ = smtp
    body = completed_event(job(), Mp3Info("mp3-1", 1000, 10.0, "192k"))
    notify_app.handler(event("conversion_completed", body), None)
    again = notify_app.handler(event("conversion_completed", body, redelivered=True), None)
    assert again == {"already_done": 1}
    assert len(server.messages) == 1


def test_a_451_makes_the_handler_raise_and_the_retry_sends_exactly_one(notify_app, deps, smtp, pg_url):
    server, _ = smtp
    j = job()
    body = completed_event(j, Mp3Info("mp3-1", 1000, 10.0, "192k"))
    server.rcpt_reply = "451 4.7.1 Greylisted, try again later"

    with pytest.raises(DependencyUnavailable, match="451"):
        notify_app.handler(event("conversion_completed", body), None)
    assert server.messages == []
    record = row(pg_url, j.id, "completed")
    assert record is not None and record["status"] == "pending" and record["attempts"] == 1
    assert record["smtp_code"] == 451

    server.rcpt_reply = None  # the server recovers; the broker redelivers
    assert notify_app.handler(event("conversion_completed", body, redelivered=True), None) == {"sent": 1}
    assert notify_app.handler(event("conversion_completed", body, redelivered=True), None) == {"already_done": 1}
    assert len(server.messages) == 1
    record = row(pg_url, j.id, "completed")
    assert record["status"] == "sent" and record["attempts"] == 2  # type: ignore[index]


def test_a_550_is_recorded_as_undeliverable_and_acked(notify_app, deps, smtp, pg_url):
    server, _ = smtp
    j = job()
    body = failed_event(j, "no_audio", "No audio.")
    server.rcpt_reply = "550 5.1.1 No such user here"

    assert notify_app.handler(event("conversion_failed", body), None) == {"undeliverable": 1}

    record = row(pg_url, j.id, "failed")
    assert record is not None and record["status"] == "undeliverable" and record["smtp_code"] == 550
    assert "No such user" in record["last_error"]
    server.rcpt_reply = None
    assert notify_app.handler(event("conversion_failed", body, redelivered=True), None) == {"already_done": 1}
    assert server.messages == [] and server.rcpt_attempts == 1


def test_no_server_listening_makes_the_handler_raise(notify_app, pg_url, monkeypatch):
    d = make_deps(pg_url, procs.free_port())
    monkeypatch.setattr(notify_app, "deps", lambda: d)
    j = job()
    with pytest.raises(DependencyUnavailable):
        notify_app.handler(event("conversion_completed", completed_event(j, Mp3Info("m", 1, 1.0, "192k"))), None)
    assert row(pg_url, j.id, "completed")["status"] == "pending"  # type: ignore[index]


def test_concurrent_deliveries_of_one_message_send_one_email(notify_app, pg_url, smtp):
    """Two invocations at once (e.g. a redelivery while the first still runs): the row lock serialises them."""
    server, port = smtp
    server.data_delay_s = 0.5
    body = completed_event(job(), Mp3Info("mp3-1", 1000, 10.0, "192k"))
    results: list[Any] = []

    def invoke() -> None:
        d = make_deps(pg_url, port)  # each with its own database connection, as two workers would be
        try:
            results.append(notify_app.handle(event("conversion_completed", body), d))
        finally:
            d.records._db.close()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results, key=str) == sorted([{"sent": 1}, {"already_done": 1}], key=str)
    assert len(server.messages) == 1


def test_records_are_kept_per_job_and_kind(pg_url):
    log = PostgresNotificationLog(Postgres(pg_url))
    job_id = str(uuid.uuid4())
    with log.claim(job_id, "completed", recipient="a@b.c", message_id="<1@x>", correlation_id=None) as claim:
        assert claim.record.status == "pending"
    with log.claim(job_id, "failed", recipient="a@b.c", message_id="<2@x>", correlation_id="c") as claim:
        claim.mark_sent()
    with log.claim(job_id, "completed", recipient="a@b.c", message_id="<3@x>", correlation_id=None) as claim:
        assert claim.record.message_id == "<1@x>"  # the first attempt's id is kept
    assert log.get(job_id, "failed").status == "sent"  # type: ignore[union-attr]
    assert log.get(job_id, "completed").status == "pending"  # type: ignore[union-attr]


def test_a_delivery_that_waits_too_long_for_the_record_fails_and_is_retried(pg_url):
    holder = PostgresNotificationLog(Postgres(pg_url))
    waiter = PostgresNotificationLog(Postgres(pg_url), lock_timeout_s=0.3)
    job_id = str(uuid.uuid4())

    def claim(log: PostgresNotificationLog) -> Any:
        return log.claim(job_id, "completed", recipient="a@b.c", message_id="<1@x>", correlation_id=None)

    def wait_for_it() -> None:
        with claim(waiter):
            pass

    with claim(holder), pytest.raises(DependencyUnavailable):
        wait_for_it()
    with claim(waiter) as held:
        assert held.record.status == "pending"  # free again once the holder is done


def test_a_holder_that_goes_silent_loses_the_record(pg_url):
    silent = PostgresNotificationLog(Postgres(pg_url), hold_timeout_s=0.3)
    job_id = str(uuid.uuid4())
    with pytest.raises(DependencyUnavailable), silent.claim(
        job_id, "failed", recipient="a@b.c", message_id="<1@x>", correlation_id=None
    ) as held:
        time.sleep(1.0)  # stuck talking to a server, or gone
        held.mark_sent()
    assert PostgresNotificationLog(Postgres(pg_url)).get(job_id, "failed") is None  # rolled back
