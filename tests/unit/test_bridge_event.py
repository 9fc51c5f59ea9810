"""build_rmq_event: the `aws:rmq` event, field for field as AWS documents it (no network)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pika
import pytest

from infra.bridge import Message, aws_timestamp, build_rmq_event

# The RabbitMQ example of "Using Lambda with Amazon MQ", AWS Lambda Developer Guide
# (https://docs.aws.amazon.com/lambda/latest/dg/with-mq.html; awsdocs/aws-lambda-developer-guide,
# doc_source/with-mq.md). Two fixes to the page: it lacks the comma after "headers", and its
# bodySize (80) does not match its own data (43 bytes); here bodySize is the body's length.
AWS_EXAMPLE: dict[str, Any] = {
    "eventSource": "aws:rmq",
    "eventSourceArn": (
        "arn:aws:mq:us-west-2:112556298976:broker:pizzaBroker:b-9bcfa592-423a-4942-879d-eb284b418fc8"
    ),
    "rmqMessagesByQueue": {
        "pizzaQueue::/": [
            {
                "basicProperties": {
                    "contentType": "text/plain",
                    "contentEncoding": None,
                    "headers": {
                        "header1": {"bytes": [118, 97, 108, 117, 101, 49]},
                        "header2": {"bytes": [118, 97, 108, 117, 101, 50]},
                        "numberInHeader": 10,
                    },
                    "deliveryMode": 1,
                    "priority": 34,
                    "correlationId": None,
                    "replyTo": None,
                    "expiration": "60000",
                    "messageId": None,
                    "timestamp": "Jan 1, 1970, 12:33:41 AM",
                    "type": None,
                    "userId": "AIDACKCEVSQ6C2EXAMPLE",
                    "appId": None,
                    "clusterId": None,
                    "bodySize": 43,
                },
                "redelivered": False,
                "data": "eyJ0aW1lb3V0IjowLCJkYXRhIjoiQ1pybWYwR3c4T3Y0YnFMUXhENEUifQ==",
            }
        ]
    },
}
EXAMPLE_BODY = base64.b64decode(AWS_EXAMPLE["rmqMessagesByQueue"]["pizzaQueue::/"][0]["data"])
EXAMPLE_PROPERTIES = pika.BasicProperties(
    content_type="text/plain",
    headers={"header1": "value1", "header2": "value2", "numberInHeader": 10},
    delivery_mode=1,
    priority=34,
    expiration="60000",
    timestamp=2021,  # 00:33:41 UTC on 1 Jan 1970
    user_id="AIDACKCEVSQ6C2EXAMPLE",
)
BASIC_PROPERTY_KEYS = list(AWS_EXAMPLE["rmqMessagesByQueue"]["pizzaQueue::/"][0]["basicProperties"])


def example_event(**props: Any) -> dict[str, Any]:
    message = Message(body=EXAMPLE_BODY, properties=pika.BasicProperties(**props), redelivered=False)
    return build_rmq_event("arn:broker", "q", "/", [message])


def test_matches_the_aws_example_exactly() -> None:
    message = Message(body=EXAMPLE_BODY, properties=EXAMPLE_PROPERTIES, redelivered=False, delivery_tag=1)
    event = build_rmq_event(AWS_EXAMPLE["eventSourceArn"], "pizzaQueue", "/", [message])
    assert event == AWS_EXAMPLE
    assert list(event) == list(AWS_EXAMPLE)
    assert list(event["rmqMessagesByQueue"]["pizzaQueue::/"][0]["basicProperties"]) == BASIC_PROPERTY_KEYS
    assert EXAMPLE_BODY == b'{"timeout":0,"data":"CZrmf0Gw8Ov4bqLQxD4E"}'
    assert json.loads(json.dumps(event)) == event  # plain JSON, nothing Python-specific


def test_every_property_key_is_present_and_null_when_unset() -> None:
    event = example_event()
    [message] = event["rmqMessagesByQueue"]["q::/"]
    props = message["basicProperties"]
    assert list(props) == BASIC_PROPERTY_KEYS
    assert {k for k, v in props.items() if v is not None} == {"bodySize"}
    assert props["bodySize"] == len(EXAMPLE_BODY)
    assert message["redelivered"] is False


def test_string_properties_are_carried() -> None:
    props = example_event(
        content_type="application/json", content_encoding="utf-8", correlation_id="corr-1", reply_to="r",
        message_id="m-1", type="job", app_id="upload", cluster_id="c", user_id="guest", delivery_mode=2,
    )["rmqMessagesByQueue"]["q::/"][0]["basicProperties"]
    assert props["contentType"] == "application/json"
    assert props["contentEncoding"] == "utf-8"
    assert props["correlationId"] == "corr-1"
    assert props["replyTo"] == "r"
    assert props["messageId"] == "m-1"
    assert props["type"] == "job"
    assert props["appId"] == "upload"
    assert props["clusterId"] == "c"
    assert props["userId"] == "guest"
    assert props["deliveryMode"] == 2


def test_headers_are_encoded_as_aws_does() -> None:
    headers = {
        "text": "é",  # UTF-8 c3 a9; Java bytes are signed
        "raw": b"\x00\x7f\x80\xff",
        "int": -3,
        "float": 1.5,
        "decimal": Decimal("2.50"),
        "whole_decimal": Decimal("7"),
        "bool": True,
        "none": None,
        "when": datetime(2024, 3, 5, 13, 4, 5, tzinfo=UTC),
        "table": {"inner": "a", "n": 1},
        "array": ["b", 2],
    }
    encoded = example_event(headers=headers)["rmqMessagesByQueue"]["q::/"][0]["basicProperties"]["headers"]
    assert encoded == {
        "text": {"bytes": [-61, -87]},
        "raw": {"bytes": [0, 127, -128, -1]},
        "int": -3,
        "float": 1.5,
        "decimal": 2.5,
        "whole_decimal": 7,
        "bool": True,
        "none": None,
        "when": "Mar 5, 2024, 1:04:05 PM",
        "table": {"inner": {"bytes": [97]}, "n": 1},
        "array": [{"bytes": [98]}, 2],
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "Jan 1, 1970, 12:00:00 AM"),
        (2021, "Jan 1, 1970, 12:33:41 AM"),
        (43200, "Jan 1, 1970, 12:00:00 PM"),
        (1_700_000_000, "Nov 14, 2023, 10:13:20 PM"),
        (datetime(2025, 12, 31, 23, 59, 59), "Dec 31, 2025, 11:59:59 PM"),  # naive = UTC
        (None, None),
    ],
)
def test_timestamps_look_like_the_aws_example(value: Any, text: str | None) -> None:
    assert aws_timestamp(value) == text


def test_a_batch_keeps_delivery_order_under_one_queue_key() -> None:
    messages = [
        Message(body=f"m{i}".encode(), properties=pika.BasicProperties(), redelivered=i == 1, delivery_tag=i)
        for i in range(3)
    ]
    event = build_rmq_event("arn:b", "video_conversion_queue", "prod", messages)
    assert list(event["rmqMessagesByQueue"]) == ["video_conversion_queue::prod"]
    batch = event["rmqMessagesByQueue"]["video_conversion_queue::prod"]
    assert [base64.b64decode(m["data"]) for m in batch] == [b"m0", b"m1", b"m2"]
    assert [m["redelivered"] for m in batch] == [False, True, False]
    assert [m["basicProperties"]["bodySize"] for m in batch] == [2, 2, 2]


def test_binary_bodies_round_trip() -> None:
    body = bytes(range(256))
    message = Message(body=body, properties=pika.BasicProperties(), redelivered=False)
    [out] = build_rmq_event("arn", "q", "/", [message])["rmqMessagesByQueue"]["q::/"]
    assert base64.b64decode(out["data"]) == body
    assert out["basicProperties"]["bodySize"] == 256

