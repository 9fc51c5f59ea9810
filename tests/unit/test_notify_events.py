"""Parsing the aws:rmq event and the conversion event payloads (vid2mp3.notify.events)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from infra.bridge import Message, build_rmq_event
from vid2mp3.jobs import Job, Mp3Info, completed_event, failed_event
from vid2mp3.notify import Completed, Failed, InvalidEvent
from vid2mp3.notify.events import IncomingMessage, parse_notification, rmq_messages, safe_correlation_id

BROKER = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-local:b-1"


def job(**changes) -> Job:
    now = datetime.now(UTC)
    values = dict(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="ada@example.com",
                  filename="holiday.mp4", content_type="video/mp4", size=1000, sha256="0" * 64, video_id="v1",
                  bitrate="192k", correlation_id="corr-1234", created_at=now, updated_at=now)
    values.update(changes)
    return Job(**values)


def message(body: object, queue: str = "conversion_completed", correlation_id: str | None = "corr-1234",
            redelivered: bool = False) -> IncomingMessage:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return IncomingMessage(queue=queue, virtual_host="/", body=raw, correlation_id=correlation_id,
                           redelivered=redelivered)


def test_the_bridges_event_is_unpacked_message_by_message():
    j = job()
    bodies = [json.dumps(completed_event(j, Mp3Info("m1", 4_000_000, 205.4, "192k"))).encode(), b"second"]
    props = SimpleNamespace(correlation_id="corr-1234", content_type="application/json", headers=None)
    event = build_rmq_event(BROKER, "conversion_completed", "/",
                            [Message(body=b, properties=props, redelivered=i == 1) for i, b in enumerate(bodies)])

    messages = rmq_messages(event)

    assert [m.body for m in messages] == bodies
    assert [m.redelivered for m in messages] == [False, True]
    assert {(m.queue, m.virtual_host, m.correlation_id) for m in messages} == {
        ("conversion_completed", "/", "corr-1234")}


def test_a_queue_key_with_a_named_vhost_and_several_queues():
    data = base64.b64encode(b"{}").decode()
    event = {"eventSource": "aws:rmq", "eventSourceArn": BROKER, "rmqMessagesByQueue": {
        "conversion_failed::prod": [{"basicProperties": {}, "redelivered": False, "data": data}],
        "conversion_completed::/": [{"basicProperties": {"correlationId": None}, "redelivered": True,
                                      "data": data}],
    }}
    messages = rmq_messages(event)
    assert [(m.queue, m.virtual_host) for m in messages] == [("conversion_failed", "prod"),
                                                             ("conversion_completed", "/")]


def test_not_an_rmq_event_is_an_error_not_a_skipped_message():
    with pytest.raises(ValueError, match="aws:rmq"):
        rmq_messages({"Records": []})


def test_bad_base64_becomes_an_empty_body_that_does_not_parse():
    event = {"eventSource": "aws:rmq", "rmqMessagesByQueue": {
        "conversion_completed::/": [{"basicProperties": {}, "redelivered": False, "data": "%%%"}]}}
    [m] = rmq_messages(event)
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_notification(m)


def test_completed_event_from_the_jobs_module():
    j = job()
    n = parse_notification(message(completed_event(j, Mp3Info("m1", 4_812_345, 205.4, "192k"))))
    assert n == Completed(job_id=j.id, email="ada@example.com", filename="holiday.mp4", mp3_size=4_812_345,
                          duration_s=205.4, bitrate="192k", correlation_id="corr-1234")
    assert n.kind == "completed"


def test_failed_event_from_the_jobs_module():
    j = job()
    n = parse_notification(message(failed_event(j, "unsupported_media", "This is not a video."),
                                   queue="conversion_failed"))
    assert n == Failed(job_id=j.id, email="ada@example.com", filename="holiday.mp4",
                       error_code="unsupported_media", error_message="This is not a video.",
                       correlation_id="corr-1234")
    assert n.kind == "failed"


def test_the_kind_comes_from_the_body_on_an_unknown_queue():
    j = job()
    n = parse_notification(message(failed_event(j, "x", "y"), queue="elsewhere"))
    assert isinstance(n, Failed)


def test_the_correlation_id_falls_back_to_the_body_and_must_be_a_token():
    j = job(correlation_id="from-body-1")
    body = completed_event(j, Mp3Info("m1", 1, 1.0, "192k"))
    assert parse_notification(message(body, correlation_id=None)).correlation_id == "from-body-1"
    body["correlation_id"] = "evil\r\nBcc: x@example.com"
    assert parse_notification(message(body, correlation_id=None)).correlation_id is None
    assert safe_correlation_id("a b") is None
    assert safe_correlation_id(42) is None


@pytest.mark.parametrize("body, error", [
    (b"not json", "not JSON"),
    ([1, 2], "not a JSON object"),
    ({"email": "a@b.c", "filename": "f", "mp3_size": 1, "duration_s": 1}, "job_id"),
    ({"job_id": "not-a-uuid", "email": "a@b.c", "filename": "f", "mp3_size": 1, "duration_s": 1}, "job_id"),
    ({"job_id": str(uuid.uuid4()), "email": "a@b.c", "filename": "f", "mp3_size": -1, "duration_s": 1},
     "mp3_size"),
    ({"job_id": str(uuid.uuid4()), "email": "a@b.c", "filename": "f", "mp3_size": 1, "duration_s": "NaN"},
     "duration_s"),
])
def test_malformed_completed_bodies(body, error):
    with pytest.raises(InvalidEvent, match=error):
        parse_notification(message(body))


def test_a_failed_event_needs_its_error_object():
    body = {"job_id": str(uuid.uuid4()), "email": "a@b.c", "filename": "f"}
    with pytest.raises(InvalidEvent, match="error"):
        parse_notification(message(body, queue="conversion_failed"))
