"""Notifications: one email to the job's owner when a conversion finished, exactly once per job and outcome.

    events.py   the `aws:rmq` event and the conversion_completed / conversion_failed payloads, parsed
    compose.py  the email (multipart text + HTML) built from a notification
    records.py  the sent record in PostgreSQL (the port, and its adapter); memory.py is its fake
    service.py  claim, compose, send, record: the one function the notify handler calls
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

Kind = Literal["completed", "failed"]


class InvalidEvent(ValueError):
    """A message that is not a conversion event this service understands; retrying cannot help."""


@dataclass(frozen=True)
class Completed:
    """conversion_completed: the MP3 is committed and can be downloaded."""

    job_id: str
    email: str
    filename: str
    mp3_size: int
    duration_s: float
    bitrate: str | None = None
    correlation_id: str | None = None
    expires_at: datetime | None = None  # when the MP3 is deleted: the link works until then

    kind: ClassVar[Kind] = "completed"


@dataclass(frozen=True)
class Failed:
    """conversion_failed: the job is marked failed; `error_message` is meant for the user."""

    job_id: str
    email: str
    filename: str
    error_code: str
    error_message: str
    correlation_id: str | None = None

    kind: ClassVar[Kind] = "failed"


Notification = Completed | Failed
