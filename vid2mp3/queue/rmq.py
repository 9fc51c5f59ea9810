"""From an `aws:rmq` event to messages: the one parser convert and notify share.

The event is what Amazon MQ's event source mapping sends (infra/bridge.py sends the same locally):
`rmqMessagesByQueue` keyed "<queue>::<virtual host>", each message with `basicProperties`,
`redelivered` and the body base64-encoded in `data`. AWS's (Java) poller encodes a string header as
`{"bytes": [...]}` with signed bytes, and a number as a number.

What the broker tells us about retries: a quorum queue puts `x-delivery-count` in the headers, the
number of earlier deliveries that failed (RabbitMQ 3.10 sends 0 on the first delivery; 4.x omits it
until it is 1). With `x-delivery-limit: N` the message is delivered at most N+1 times: the delivery
whose count is N is the last one, after which the broker dead-letters it into `<queue>.dlq`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent

from vid2mp3.queue.topology import is_dead_letter_queue

EVENT_SOURCE = "aws:rmq"
DELIVERY_COUNT_HEADER = "x-delivery-count"
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class RmqMessage:
    queue: str
    body: bytes
    redelivered: bool = False
    delivery_count: int | None = None  # x-delivery-count, when the broker sent it
    correlation_id: str | None = None  # the message property, when it is a sane token
    virtual_host: str = "/"

    @property
    def dead_lettered(self) -> bool:
        """Read from a dead-letter queue: the broker gave up redelivering it."""
        return is_dead_letter_queue(self.queue)

    def is_last(self, delivery_limit: int) -> bool:
        """The broker will not deliver this message again if this delivery fails."""
        return self.delivery_count is not None and self.delivery_count >= delivery_limit


def safe_correlation_id(value: object) -> str | None:
    """The id when it is a sane token (it travels into logs and a mail header), else None."""
    if isinstance(value, str) and _CORRELATION_ID.fullmatch(value):
        return value
    return None


def header_int(value: Any) -> int | None:
    """A numeric header as AWS or the bridge encode it: a number, a numeric string, or {"bytes": [...]}."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping) and isinstance(value.get("bytes"), list):
        try:
            value = bytes(b % 256 for b in value["bytes"]).decode("ascii")
        except (TypeError, ValueError):
            return None
    if isinstance(value, str | bytes) and value.strip().isdigit():
        return int(value)
    return None


def rmq_messages(event: Mapping[str, Any]) -> list[RmqMessage]:
    """Every message of the event, queue by queue, in delivery order.

    Raises ValueError when this is not an `aws:rmq` event at all (a wiring mistake, not a bad message).
    A body that is not valid base64 becomes b"" (reported as an invalid message by the caller).
    """
    if event.get("eventSource") != EVENT_SOURCE or not isinstance(event.get("rmqMessagesByQueue"), dict):
        raise ValueError(f"not an {EVENT_SOURCE} event (eventSource={event.get('eventSource')!r})")
    parsed = RabbitMQEvent(dict(event))
    found: list[RmqMessage] = []
    for key, batch in parsed.rmq_messages_by_queue.items():
        queue, _, vhost = key.rpartition("::")
        if not queue:  # no "::" in the key
            queue, vhost = key, "/"
        for message in batch:
            raw = message.raw_event
            try:
                body = base64.b64decode(str(raw.get("data") or ""), validate=True)
            except (binascii.Error, ValueError):
                body = b""
            props = raw.get("basicProperties") or {}
            headers = props.get("headers") or {}
            count = header_int(headers.get(DELIVERY_COUNT_HEADER)) if isinstance(headers, Mapping) else None
            found.append(RmqMessage(
                queue=queue,
                body=body,
                redelivered=bool(raw.get("redelivered")),
                delivery_count=count,
                correlation_id=safe_correlation_id(props.get("correlationId")),
                virtual_host=vhost or "/",
            ))
    return found
