"""In-memory JobRepository for unit tests: the same rules as the PostgreSQL adapter, one lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vid2mp3.errors import Conflict, DependencyUnavailable
from vid2mp3.jobs import Job, Mp3Info
from vid2mp3.jobs.postgres import parse_uuid

_OPEN = ("queued", "converting")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Row:
    job: Job
    publish_attempts: int = 0
    publish_attempted_at: datetime | None = None
    deleted_at: datetime | None = None
    finished_at: datetime | None = None
    event_published_at: datetime | None = None
    event_attempted_at: datetime | None = None


@dataclass
class InMemoryJobRepository:
    """`clock` stands for the database's now(); `available=False` makes every call fail like a down DB."""

    clock: Callable[[], datetime] = _utcnow
    available: bool = True
    retention_s: float = 72 * 3600.0
    rows: dict[str, _Row] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The database is unavailable.")

    def _is_live(self, row: _Row) -> bool:
        """Neither deleted nor expired."""
        return row.deleted_at is None and (row.job.expires_at is None or row.job.expires_at > self.clock())

    def _live(self, job_id: str) -> _Row | None:
        row = self.rows.get(_key(job_id))
        return row if row is not None and self._is_live(row) else None

    def create(self, job: Job) -> None:
        with self._lock:
            self._check()
            if parse_uuid(job.id) is None or parse_uuid(job.owner_id) is None:
                raise ValueError("job and owner ids must be UUIDs")
            if _key(job.id) in self.rows:
                raise Conflict("A job with this id already exists.", code="job_exists")
            self.rows[_key(job.id)] = _Row(job)

    def get(self, job_id: str, owner_id: str | None = None) -> Job | None:
        with self._lock:
            self._check()
            row = self._live(job_id)
            if row is None or (owner_id is not None and _key(row.job.owner_id) != _key(owner_id)):
                return None
            return row.job

    def list_for_owner(self, owner_id: str, limit: int, after: tuple[datetime, str] | None) -> list[Job]:
        with self._lock:
            self._check()
            mine = [
                r.job for r in self.rows.values()
                if self._is_live(r) and _key(r.job.owner_id) == _key(owner_id)
            ]
            mine.sort(key=lambda j: (j.created_at, _key(j.id)), reverse=True)
            if after is not None:
                mark = (after[0], _key(after[1]))
                mine = [j for j in mine if (j.created_at, _key(j.id)) < mark]
            return mine[: max(0, limit)]

    def mark_published(self, job_id: str) -> None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(job_id))
            if row is not None and row.job.published_at is None:
                row.job = replace(row.job, published_at=self.clock())

    def _unpublished_rows(self, older_than_s: float) -> list[_Row]:
        cutoff = self.clock() - timedelta(seconds=older_than_s)
        found = [
            r for r in self.rows.values()
            if r.deleted_at is None and r.job.status == "queued" and r.job.published_at is None
            and r.job.created_at < cutoff
        ]
        return sorted(found, key=lambda r: (r.job.created_at, r.job.id))

    def unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        with self._lock:
            self._check()
            return [r.job for r in self._unpublished_rows(older_than_s)[:limit]]

    def claim_unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        with self._lock:
            self._check()
            now = self.clock()
            cutoff = now - timedelta(seconds=older_than_s)
            claimed = [
                r for r in self._unpublished_rows(older_than_s)
                if r.publish_attempted_at is None or r.publish_attempted_at < cutoff
            ][:limit]
            for r in claimed:
                r.publish_attempts += 1
                r.publish_attempted_at = now
            return [r.job for r in claimed]

    def _from_open(self, job_id: str, *, finishes: bool, **changes: Any) -> Job | None:
        """Apply `changes` to a live queued/converting job, as the PostgreSQL adapter's single UPDATE;
        None when the job is gone or already finished. A delivered job counts as published."""
        with self._lock:
            self._check()
            row = self._live(job_id)
            if row is None or row.job.status not in _OPEN:
                return None
            now = self.clock()
            row.job = replace(row.job, updated_at=now, published_at=row.job.published_at or now, **changes)
            if finishes:
                row.finished_at = now
            return row.job

    def start_conversion(self, job_id: str) -> Job | None:
        return self._from_open(job_id, finishes=False, status="converting", progress=0)

    def set_progress(self, job_id: str, progress: int) -> None:
        with self._lock:
            self._check()
            row = self._live(job_id)
            if row is not None and row.job.status == "converting":
                row.job = replace(row.job, progress=max(0, min(100, int(progress))), updated_at=self.clock())

    def _expiry(self) -> datetime:
        return self.clock() + timedelta(seconds=self.retention_s)

    def mark_done(self, job_id: str, mp3: Mp3Info) -> bool:
        return self._from_open(job_id, finishes=True, status="done", progress=100, mp3=mp3, error_code=None,
                               error_message=None, expires_at=self._expiry()) is not None

    def mark_failed(self, job_id: str, code: str, message: str) -> bool:
        return self._from_open(job_id, finishes=True, status="failed", error_code=code,
                               error_message=message, expires_at=self._expiry()) is not None

    def mark_event_published(self, job_id: str) -> None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(job_id))
            if row is not None and row.event_published_at is None:
                row.event_published_at = self.clock()

    def claim_unpublished_events(self, older_than_s: float, limit: int = 100) -> list[Job]:
        with self._lock:
            self._check()
            now = self.clock()
            cutoff = now - timedelta(seconds=older_than_s)
            claimed = sorted(
                (r for r in self.rows.values()
                 if r.deleted_at is None and r.finished_at is not None and r.finished_at < cutoff
                 and r.event_published_at is None
                 and (r.event_attempted_at is None or r.event_attempted_at < cutoff)),
                key=lambda r: (r.finished_at or now, _key(r.job.id)),
            )[:limit]
            for r in claimed:
                r.event_attempted_at = now
            return [r.job for r in claimed]

    def mark_deleted(self, job_id: str, owner_id: str) -> Job | None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(job_id))
            if row is None or _key(row.job.owner_id) != _key(owner_id):
                return None
            row.deleted_at = row.deleted_at or self.clock()
            return row.job

    def delete(self, job_id: str, owner_id: str) -> Job | None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(job_id))
            if row is None or _key(row.job.owner_id) != _key(owner_id):
                return None
            del self.rows[_key(job_id)]
            return row.job

    def deleting(self, older_than_s: float, limit: int = 100) -> list[Job]:
        with self._lock:
            self._check()
            cutoff = self.clock() - timedelta(seconds=older_than_s)
            found = [r for r in self.rows.values() if r.deleted_at is not None and r.deleted_at < cutoff]
            found.sort(key=lambda r: r.deleted_at or cutoff)
            return [r.job for r in found[:limit]]

    def expire(self, now: datetime, limit: int = 100) -> list[Job]:
        with self._lock:
            self._check()
            due = sorted((r for r in self.rows.values() if r.deleted_at is None and r.job.expires_at is not None
                          and r.job.expires_at <= now), key=lambda r: r.job.expires_at or now)[:limit]
            for r in due:
                r.deleted_at = self.clock()
            return [r.job for r in due]

    def mark_source_removed(self, job_id: str) -> None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(job_id))
            if row is not None and row.job.source_removed_at is None:
                row.job = replace(row.job, source_removed_at=self.clock())

    def mark_owner_deleted(self, owner_id: str) -> list[Job]:
        with self._lock:
            self._check()
            mine = [r for r in self.rows.values() if _key(r.job.owner_id) == _key(owner_id)]
            for r in mine:
                r.deleted_at = r.deleted_at or self.clock()
            return [r.job for r in mine]


def _key(value: str) -> str:
    """Ids compare as UUIDs (case and hyphens do not matter), like the uuid columns do."""
    parsed = parse_uuid(value)
    return str(parsed) if parsed is not None else f"invalid:{value}"
