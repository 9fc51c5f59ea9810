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
    return {
        "job_id": job.id,
        "email": job.owner_email,
        "filename": job.filename,
        "mp3_size": mp3.size,
        "duration_s": round(mp3.duration_s, 3),
        "bitrate": mp3.bitrate,
        "correlation_id": job.correlation_id,
    }


def failed_event(job: Job, code: str, message: str) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "email": job.owner_email,
        "filename": job.filename,
        "error": {"code": code, "message": message},
        "correlation_id": job.correlation_id,
    }
