"""From the `aws:rmq` event to deliveries: bodies, headers as AWS encodes them, the dead-letter queue."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pika
import pytest

from infra.bridge import Message, build_rmq_event
from vid2mp3.convert.events import Delivery, InvalidMessage, deliveries, header_int, parse_request

ARN = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-local:b-0"


def event(queue: str, *messages: tuple[bytes, dict[str, Any] | None, bool]) -> dict[str, Any]:
    return build_rmq_event(ARN, queue, "/", [
        Message(body, pika.BasicProperties(headers=headers, correlation_id="corr-1"), redelivered, i + 1)
        for i, (body, headers, redelivered) in enumerate(messages)
    ])


def test_deliveries_carry_body_count_and_correlation_id() -> None:
    body = json.dumps({"job_id": str(uuid.uuid4())}).encode()
    [d] = deliveries(event("video_conversion_queue", (body, {"x-delivery-count": 5}, True)))
    assert d == Delivery("video_conversion_queue", body, True, 5, "corr-1")
    assert d.is_last(5) and not d.is_last(6) and not d.dead_lettered


def test_first_delivery_without_headers() -> None:
    [d] = deliveries(event("video_conversion_queue", (b"{}", None, False)))
    assert d.delivery_count is None and not d.is_last(5)


def test_dead_letter_queue_is_recognised() -> None:
    dlq = event("video_conversion_queue.dlq", (b"{}", {"x-delivery-count": 0, "x-first-death-reason": "delivery_limit"},
                                                False))
    [d] = deliveries(dlq)
    assert d.queue == "video_conversion_queue.dlq" and d.dead_lettered


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (3.0, 3), ("4", 4), ({"bytes": [55]}, 7), ({"bytes": [-61]}, None), (True, None), (None, None),
     ("x", None), (2.5, None)],
)
def test_header_int(value: Any, expected: int | None) -> None:
    assert header_int(value) == expected


def test_not_an_rmq_event_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="aws:rmq"):
        deliveries({"Records": []})


def test_undecodable_data_becomes_an_empty_body() -> None:
    raw = event("video_conversion_queue", (b"{}", None, False))
    raw["rmqMessagesByQueue"]["video_conversion_queue::/"][0]["data"] = "%%%"
    [d] = deliveries(raw)
    assert d.body == b""


def test_parse_request() -> None:
    job_id = uuid.uuid4()
    body = json.dumps({"job_id": str(job_id).upper(), "correlation_id": "c-2"}).encode()
    request = parse_request(Delivery("q", body, correlation_id="c-1"))
    assert request.job_id == str(job_id) and request.correlation_id == "c-2"
    assert parse_request(Delivery("q", json.dumps({"job_id": str(job_id), "correlation_id": "a b"}).encode(),
                                  correlation_id="c-1")).correlation_id == "c-1"


@pytest.mark.parametrize("body", [b"", b"nope", b"[1]", b'{"job_id": 5}', b"{}",
                                  base64.b64encode(b'{"job_id": "x"}')])
def test_invalid_requests(body: bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_request(Delivery("q", body))
