"""From an `aws:rmq` event to notifications.

The event is what Amazon MQ's event source mapping sends (and infra/bridge.py, locally):
`rmqMessagesByQueue` keyed "<queue>::<virtual host>", each message with `basicProperties`, `redelivered`
and the body base64-encoded in `data`. The bodies are vid2mp3.jobs.completed_event / failed_event.
"""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from vid2mp3.notify import Completed, Failed, InvalidEvent, Kind, Notification
from vid2mp3.queue.rmq import EVENT_SOURCE, RmqMessage, rmq_messages, safe_correlation_id
from vid2mp3.queue.topology import CONVERSION_COMPLETED_QUEUE, CONVERSION_FAILED_QUEUE

__all__ = ["EVENT_SOURCE", "KIND_BY_QUEUE", "IncomingMessage", "parse_notification", "rmq_messages",
           "safe_correlation_id"]

KIND_BY_QUEUE: dict[str, Kind] = {CONVERSION_COMPLETED_QUEUE: "completed", CONVERSION_FAILED_QUEUE: "failed"}


IncomingMessage = RmqMessage


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
    expires_at: AwareDatetime | None = None


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
                             correlation_id=correlation_id, expires_at=done.expires_at)
        failed = _FailedBody.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidEvent(f"{kind} event: {where}: {first['msg']}") from None
    return Failed(job_id=str(failed.job_id), email=failed.email.strip(), filename=failed.filename,
                  error_code=failed.error.code, error_message=failed.error.message,
                  correlation_id=correlation_id)
