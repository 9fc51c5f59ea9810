"""An in-memory sent record for tests, with the same hold/commit/rollback behaviour as PostgreSQL's."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from vid2mp3.notify import Kind
from vid2mp3.notify.records import ERROR_TEXT_LIMIT, Claim, NotificationRecord

Key = tuple[str, Kind]


class _MemoryClaim:
    def __init__(self, record: NotificationRecord, clock: Callable[[], datetime]) -> None:
        self._record = record
        self._clock = clock

    @property
    def record(self) -> NotificationRecord:
        return self._record

    def _attempt(self, **changes: Any) -> None:
        self._record = dataclasses.replace(self._record, attempts=self._record.attempts + 1, **changes)

    def mark_sent(self) -> None:
        self._attempt(status="sent", sent_at=self._clock())

    def mark_undeliverable(self, reason: str, smtp_code: int | None = None) -> None:
        self._attempt(status="undeliverable", last_error=reason[:ERROR_TEXT_LIMIT], smtp_code=smtp_code)

    def record_failure(self, reason: str, smtp_code: int | None = None) -> None:
        self._attempt(last_error=reason[:ERROR_TEXT_LIMIT], smtp_code=smtp_code)


class MemoryNotificationLog:
    """Records by (job_id, kind); a claim holds a per-key lock and commits only when its block succeeds."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.records: dict[Key, NotificationRecord] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}

    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextmanager
    def claim(
        self, job_id: str, kind: Kind, *, recipient: str, message_id: str, correlation_id: str | None
    ) -> Iterator[Claim]:
        key = (job_id, kind)
        with self._lock(key):
            current = self.records.get(key) or NotificationRecord(
                job_id=job_id, kind=kind, recipient=recipient, status="pending", message_id=message_id,
                correlation_id=correlation_id, attempts=0, last_error=None, smtp_code=None, sent_at=None,
            )
            claim = _MemoryClaim(current, self._clock)
            yield claim
            self.records[key] = claim.record  # reached only when the block did not raise

    def get(self, job_id: str, kind: Kind) -> NotificationRecord | None:
        return self.records.get((job_id, kind))
