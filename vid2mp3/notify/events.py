"""From an `aws:rmq` event to notifications.

The event is what Amazon MQ's event source mapping sends (and infra/bridge.py, locally):
`rmqMessagesByQueue` keyed "<queue>::<virtual host>", each message with `basicProperties`, `redelivered`
and the body base64-encoded in `data`. The bodies are vid2mp3.jobs.completed_event / failed_event.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vid2mp3.notify import Completed, Failed, InvalidEvent, Kind, Notification
from vid2mp3.queue.topology import CONVERSION_COMPLETED_QUEUE, CONVERSION_FAILED_QUEUE

EVENT_SOURCE = "aws:rmq"
KIND_BY_QUEUE: dict[str, Kind] = {CONVERSION_COMPLETED_QUEUE: "completed", CONVERSION_FAILED_QUEUE: "failed"}
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True)
class IncomingMessage:
    queue: str
    virtual_host: str
    body: bytes
    correlation_id: str | None
    redelivered: bool


def safe_correlation_id(value: object) -> str | None:
    """The id when it is a sane token (it travels into logs and a mail header), else None."""
    if isinstance(value, str) and _CORRELATION_ID.fullmatch(value):
        return value
    return None


def rmq_messages(event: Mapping[str, Any]) -> list[IncomingMessage]:
    """Every message of the event, queue by queue, in delivery order.

    Raises ValueError when this is not an `aws:rmq` event at all (a wiring mistake, not a bad message).
    """
    if event.get("eventSource") != EVENT_SOURCE or not isinstance(event.get("rmqMessagesByQueue"), dict):
        raise ValueError(f"not an {EVENT_SOURCE} event (eventSource={event.get('eventSource')!r})")
    parsed = RabbitMQEvent(dict(event))
    messages: list[IncomingMessage] = []
    for key, batch in parsed.rmq_messages_by_queue.items():
        queue, _, vhost = key.rpartition("::")
        if not queue:  # no "::" in the key
            queue, vhost = key, "/"
        for message in batch:
            raw = message.raw_event
            try:
                body = base64.b64decode(str(raw.get("data") or ""), validate=True)
            except (binascii.Error, ValueError):
                body = b""  # reported as an invalid message by parse_notification
            props = raw.get("basicProperties") or {}
            messages.append(IncomingMessage(
                queue=queue,
                virtual_host=vhost,
                body=body,
                correlation_id=safe_correlation_id(props.get("correlationId")),
                redelivered=bool(raw.get("redelivered")),
            ))
    return messages


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: UUID
    email: Annotated[str, Field(min_length=3, max_length=320)]
    filename: Annotated[str, Field(max_length=4096)]
    correlation_id: str | None = None


class _CompletedBody(_Body):
    mp3_size: Annotated[int, Field(ge=0)]
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    bitrate: str | None = None


class _Error(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: Annotated[str, Field(max_length=200)] = "conversion_failed"
    message: Annotated[str, Field(max_length=4096)] = ""


class _FailedBody(_Body):
    error: _Error


def parse_notification(message: IncomingMessage) -> Notification:
    """The notification a message asks for; InvalidEvent when the body is not one.

    The queue says which outcome it is; on a queue this service does not know, the body does (an
    `error` object means a failure).
    """
    try:
        body = json.loads(message.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidEvent("the body is not a JSON object")
    kind = KIND_BY_QUEUE.get(message.queue) or ("failed" if "error" in body else "completed")
    correlation_id = message.correlation_id or safe_correlation_id(body.get("correlation_id"))
    try:
        if kind == "completed":
            done = _CompletedBody.model_validate(body)
            return Completed(job_id=str(done.job_id), email=done.email.strip(), filename=done.filename,
                             mp3_size=done.mp3_size, duration_s=done.duration_s, bitrate=done.bitrate,
                             correlation_id=correlation_id)
        failed = _FailedBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidEvent(f"{kind} event: {where}: {first['msg']}") from None
    return Failed(job_id=str(failed.job_id), email=failed.email.strip(), filename=failed.filename,
                  error_code=failed.error.code, error_message=failed.error.message,
                  correlation_id=correlation_id)
