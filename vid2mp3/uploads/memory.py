"""In-memory UploadRepository for unit tests: the PostgreSQL adapter's rules, under one lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from vid2mp3.errors import Conflict, DependencyUnavailable
from vid2mp3.jobs.postgres import parse_uuid
from vid2mp3.uploads import Upload


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _key(value: str) -> str:
    parsed = parse_uuid(value)
    return str(parsed) if parsed is not None else f"invalid:{value}"


@dataclass
class _Row:
    upload: Upload
    writer: str | None = None
    writer_until: datetime | None = None


@dataclass
class InMemoryUploadRepository:
    """`clock` stands for the database's now(); `available=False` makes every call fail like a down DB."""

    clock: Callable[[], datetime] = _utcnow
    available: bool = True
    rows: dict[str, _Row] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The database is unavailable.")

    def _leased(self, row: _Row) -> bool:
        return row.writer is not None and row.writer_until is not None and row.writer_until > self.clock()

    def _owned(self, upload_id: str, owner_id: str) -> _Row | None:
        row = self.rows.get(_key(upload_id))
        return row if row is not None and _key(row.upload.owner_id) == _key(owner_id) else None

    def create(self, upload: Upload) -> None:
        with self._lock:
            self._check()
            if parse_uuid(upload.id) is None or parse_uuid(upload.owner_id) is None:
                raise ValueError("upload and owner ids must be UUIDs")
            if _key(upload.id) in self.rows:
                raise Conflict("An upload with this id already exists.", code="upload_exists")
            self.rows[_key(upload.id)] = _Row(upload)

    def get(self, upload_id: str, owner_id: str) -> Upload | None:
        with self._lock:
            self._check()
            row = self._owned(upload_id, owner_id)
            return row.upload if row is not None else None

    def claim(self, upload_id: str, owner_id: str, offset: int, token: str, lease_s: float) -> Upload | None:
        with self._lock:
            self._check()
            row = self._owned(upload_id, owner_id)
            if (row is None or row.upload.offset != offset or row.upload.finished
                    or row.upload.expires_at <= self.clock() or self._leased(row)):
                return None
            row.writer, row.writer_until = token, self.clock() + timedelta(seconds=lease_s)
            return row.upload

    def _holder(self, upload_id: str, token: str) -> _Row | None:
        row = self.rows.get(_key(upload_id))
        return row if row is not None and row.writer == token and not row.upload.finished else None

    def advance(self, upload_id: str, token: str, offset: int, new_offset: int, carry: bytes) -> bool:
        with self._lock:
            self._check()
            row = self._holder(upload_id, token)
            if row is None or row.upload.offset != offset:
                return False
            row.upload = replace(row.upload, offset=new_offset, carry=bytes(carry))
            row.writer = row.writer_until = None
            return True

    def finish(self, upload_id: str, token: str) -> bool:
        with self._lock:
            self._check()
            row = self._holder(upload_id, token)
            if row is None:
                return False
            row.upload = replace(row.upload, offset=row.upload.length, carry=b"", finished_at=self.clock())
            row.writer = row.writer_until = None
            return True

    def release(self, upload_id: str, token: str) -> None:
        with self._lock:
            self._check()
            row = self.rows.get(_key(upload_id))
            if row is not None and row.writer == token:
                row.writer = row.writer_until = None

    def end(self, upload_id: str, owner_id: str) -> Upload | None:
        with self._lock:
            self._check()
            row = self._owned(upload_id, owner_id)
            if row is None or row.upload.finished or self._leased(row):
                return None
            row.upload = replace(row.upload, expires_at=min(row.upload.expires_at, self.clock()))
            return row.upload

    def expired(self, limit: int) -> list[Upload]:
        with self._lock:
            self._check()
            now = self.clock()
            found = [r.upload for r in self.rows.values() if r.upload.expires_at < now and not self._leased(r)]
            return sorted(found, key=lambda u: u.expires_at)[: max(0, limit)]

    def remove(self, upload_id: str) -> None:
        with self._lock:
            self._check()
            self.rows.pop(_key(upload_id), None)

    def expire_owner(self, owner_id: str) -> list[Upload]:
        with self._lock:
            self._check()
            mine = [r for r in self.rows.values() if _key(r.upload.owner_id) == _key(owner_id)]
            for row in mine:
                row.upload = replace(row.upload, expires_at=min(row.upload.expires_at, self.clock()))
            return [row.upload for row in mine]
