"""Conversion jobs: the domain model, the repository port, and the messages about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Status = Literal["queued", "converting", "done", "failed"]


@dataclass(frozen=True)
class Mp3Info:
    object_id: str
    size: int
    duration_s: float
    bitrate: str


@dataclass(frozen=True)
class Job:
    id: str
    owner_id: str
    owner_email: str
    filename: str
    content_type: str
    size: int
    sha256: str | None  # of the whole video; None for a resumable upload (no request sees all of it)
    video_id: str
    bitrate: str
    correlation_id: str
    created_at: datetime
    updated_at: datetime
    status: Status = "queued"
    progress: int = 0
    duration_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    mp3: Mp3Info | None = None
    published_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # When the finished job, its files and its row go (RETENTION_HOURS after it finished).
    expires_at: datetime | None = None
    # Where its outcome is POSTed (signed webhook), as the client gave it.
    callback_url: str | None = None
    # When convert removed the video after committing the MP3 (KEEP_SOURCE off).
    source_removed_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        """The job as GET /videos/{id} shows it."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "filename": self.filename,
            "size": self.size,
            "bitrate": self.bitrate,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.duration_s is not None:
            body["duration_s"] = round(self.duration_s, 3)
        media = self.extra.get("media") if isinstance(self.extra, dict) else None
        if isinstance(media, dict) and isinstance(media.get("audio"), dict):
            body["audio"] = {k: media["audio"].get(k) for k in ("index", "language", "codec", "channels")}
        if self.status == "converting":
            body["progress"] = self.progress
        if self.status == "failed":
            body["error"] = {"code": self.error_code, "message": self.error_message}
        if self.status == "done" and self.mp3 is not None:
            body["mp3"] = {"size": self.mp3.size, "duration_s": round(self.mp3.duration_s, 3),
                           "bitrate": self.mp3.bitrate}
        if self.expires_at is not None:
            body["expires_at"] = self.expires_at.isoformat()
        if self.callback_url:
            body["callback_url"] = self.callback_url
        return body


class JobRepository(Protocol):
    def create(self, job: Job) -> None: ...

    def get(self, job_id: str, owner_id: str | None = None) -> Job | None:
        """The job, or None when unknown or (with owner_id) owned by someone else."""

    def list_for_owner(self, owner_id: str, limit: int, after: tuple[datetime, str] | None) -> list[Job]:
        """Newest first; `after` is the (created_at, id) of the last job of the previous page."""

    def mark_published(self, job_id: str) -> None: ...

    def unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        """Queued jobs whose conversion message was never confirmed, older than `older_than_s`."""

    def start_conversion(self, job_id: str) -> Job | None:
        """Move a queued/converting job to converting; None when it is done, failed or gone."""

    def set_progress(self, job_id: str, progress: int) -> None: ...

    def mark_done(self, job_id: str, mp3: Mp3Info) -> bool:
        """True when this call made the job done (False: it already was, or it is gone)."""

    def mark_failed(self, job_id: str, code: str, message: str) -> bool:
        """True when this call made the job failed (False: already finished, or gone)."""

    def delete(self, job_id: str, owner_id: str) -> Job | None:
        """Remove the owner's job row (deleted or not); returns what was removed."""

    # --- added with the PostgreSQL adapter (issue 4) -----------------------------------------------

    def claim_unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        """Like `unpublished`, but claims the jobs: each one returned is not returned again (to this or
        a concurrent caller) for another `older_than_s` seconds. The re-drive publishes what it claims.
        """

    # --- the outbox of completion/failure events (migration 0004) ----------------------------------

    def mark_event_published(self, job_id: str) -> None:
        """The broker confirmed the job's conversion_completed/conversion_failed event."""

    def claim_unpublished_events(self, older_than_s: float, limit: int = 100) -> list[Job]:
        """Finished jobs whose event was not confirmed `older_than_s` after they finished; each one
        returned is not returned again for another `older_than_s` seconds (the re-drive publishes it)."""

    def mark_deleted(self, job_id: str, owner_id: str) -> Job | None:
        """First step of DELETE: hide the owner's job from every read and refuse every transition from
        now on (start_conversion -> None, mark_done/mark_failed -> False). Returns the job also when it
        was already marked (a retried DELETE finishes the clean-up); None when there is no such job.
        """

    def deleting(self, older_than_s: float, limit: int = 100) -> list[Job]:
        """Jobs marked deleted more than `older_than_s` ago whose row is still there (an interrupted
        DELETE); the re-drive removes their objects and then the row."""

    # --- the public service (issue 13, migration 0008) ---------------------------------------------

    def expire(self, now: datetime, limit: int = 100) -> list[Job]:
        """Mark deleted (hidden, every transition refused) up to `limit` live jobs whose `expires_at` is at
        or before `now`, oldest first, and return them: the caller removes their files, then the rows.
        A job that expires later than `now`, even by a second, is left alone."""

    def mark_source_removed(self, job_id: str) -> None:
        """Convert removed the job's video (its MP3 is committed)."""

    def mark_owner_deleted(self, owner_id: str) -> list[Job]:
        """Mark every job of the owner deleted (the account goes); returns them."""


def conversion_message(job: Job) -> dict[str, Any]:
    """The message on video_conversion_queue (the design brief, "Events")."""
    return {
        "job_id": job.id,
        "video_id": job.video_id,
        "user_id": job.owner_id,
        "email": job.owner_email,
        "filename": job.filename,
        "options": {"bitrate": job.bitrate},
        "correlation_id": job.correlation_id,
    }


def completed_event(job: Job, mp3: Mp3Info) -> dict[str, Any]:
    event = {
        "job_id": job.id,
        "email": job.owner_email,
        "filename": job.filename,
        "mp3_size": mp3.size,
        "duration_s": round(mp3.duration_s, 3),
        "bitrate": mp3.bitrate,
        "correlation_id": job.correlation_id,
    }
    if job.expires_at is not None:  # until when the download link works (the email says it)
        event["expires_at"] = job.expires_at.isoformat()
    return event


def failed_event(job: Job, code: str, message: str) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "email": job.owner_email,
        "filename": job.filename,
        "error": {"code": code, "message": message},
        "correlation_id": job.correlation_id,
    }


def webhook_message(job: Job, kind: str) -> dict[str, Any]:
    """The message on webhook_queue: which job's outcome to POST to its callback URL (vid2mp3.webhooks)."""
    return {"job_id": job.id, "kind": kind, "correlation_id": job.correlation_id}


@dataclass(frozen=True)
class FinishedQueues:
    completed: str
    failed: str
    webhook: str


def finished_messages(job: Job, queues: FinishedQueues) -> list[tuple[str, dict[str, Any]]]:
    """What goes out when `job` finished (as stored: done with its MP3, or failed): the webhook's message
    when it has a callback URL, then conversion_completed / conversion_failed (notify's email). Every
    publisher of a finished job uses this: convert, the upload (a file refused once stored), the re-drive.
    """
    if job.status == "done" and job.mp3 is not None:
        kind, queue, event = "completed", queues.completed, completed_event(job, job.mp3)
    else:
        kind, queue = "failed", queues.failed
        event = failed_event(job, job.error_code or "failed", job.error_message or "")
    messages = [(queues.webhook, webhook_message(job, kind))] if job.callback_url else []
    return [*messages, (queue, event)]
