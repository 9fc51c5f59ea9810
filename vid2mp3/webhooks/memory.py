"""An in-memory delivery record for tests, with the PostgreSQL adapter's hold/commit/rollback behaviour."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from vid2mp3.webhooks import Attempt, DeliveryRecord, Kind, Status
from vid2mp3.webhooks.records import DeliveryClaim


class _MemoryClaim:
    def __init__(self, record: DeliveryRecord) -> None:
        self._record = record

    @property
    def record(self) -> DeliveryRecord:
        return self._record

    def record_attempt(self, attempt: Attempt, status: Status, next_attempt_at: datetime | None = None) -> None:
        self._record = dataclasses.replace(
            self._record, attempts=(*self._record.attempts, attempt), status=status,
            next_attempt_at=next_attempt_at or self._record.next_attempt_at,
            delivered_at=attempt.at if status == "delivered" else None)


class MemoryDeliveryLog:
    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.records: dict[tuple[str, Kind], DeliveryRecord] = {}
        self.republished: dict[tuple[str, Kind], datetime] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, Kind], threading.Lock] = {}

    @contextmanager
    def claim(self, job_id: str, kind: Kind, *, owner_id: str, url: str, event_id: str,
              correlation_id: str | None) -> Iterator[DeliveryClaim]:
        key = (job_id, kind)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            current = self.records.get(key) or DeliveryRecord(
                job_id=job_id, kind=kind, owner_id=owner_id, url=url, event_id=event_id, status="pending",
                attempts=(), next_attempt_at=self._clock())
            claim = _MemoryClaim(current)
            yield claim
            self.records[key] = claim.record  # only when the block did not raise

    def for_job(self, job_id: str) -> list[DeliveryRecord]:
        return [r for (j, _), r in self.records.items() if j == job_id]

    def claim_due(self, limit: int, reclaim_after_s: float) -> list[DeliveryRecord]:
        now = self._clock()
        due = []
        for key, record in sorted(self.records.items(), key=lambda kv: kv[1].next_attempt_at):
            last = self.republished.get(key)
            if record.status == "pending" and record.next_attempt_at <= now and (
                    last is None or last < now - timedelta(seconds=reclaim_after_s)):
                self.republished[key] = now
                due.append(record)
        return due[:limit]

    def delete_for_owner(self, owner_id: str) -> int:
        gone = [k for k, r in self.records.items() if r.owner_id == owner_id]
        for key in gone:
            del self.records[key]
        return len(gone)
