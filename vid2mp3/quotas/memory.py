"""Fakes for unit tests: usage computed from the in-memory job and upload repositories, rates in a list."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.quotas import Usage, Window
from vid2mp3.uploads.memory import InMemoryUploadRepository


@dataclass
class InMemoryUsageStore:
    jobs: InMemoryJobRepository
    uploads: InMemoryUploadRepository | None = None

    def usage(self, owner_id: str) -> Usage:
        now = self.jobs.clock()
        live = [r.job for r in self.jobs.rows.values() if r.job.owner_id == owner_id and r.deleted_at is None
                and (r.job.expires_at is None or r.job.expires_at > now)]
        stored = sum((0 if j.source_removed_at else j.size) + (j.mp3.size if j.mp3 else 0) for j in live)
        active = sum(1 for j in live if j.status in ("queued", "converting"))
        open_uploads = [r.upload for r in (self.uploads.rows.values() if self.uploads else [])
                        if r.upload.owner_id == owner_id and not r.upload.finished and r.upload.expires_at > now]
        expiries = [j.expires_at for j in live if j.expires_at is not None]
        return Usage(stored + sum(u.length for u in open_uploads), active + len(open_uploads),
                     min(expiries) if expiries else None)


@dataclass
class InMemoryRateLimiter:
    events: list[tuple[str, str, datetime]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def window(self, scope: str, key: str, window_s: float, now: datetime) -> Window:
        since = now - timedelta(seconds=window_s)
        times = [at for s, k, at in self.events if s == scope and k == key and at > since]
        return Window(len(times), min(times) if times else None)

    def hit(self, scope: str, key: str, limit: int, window_s: float, now: datetime) -> Window | None:
        with self._lock:
            current = self.window(scope, key, window_s, now)
            if current.count >= limit:
                return current
            self.events.append((scope, key, now))
            return None

    def forget(self, scope: str, key: str) -> None:
        with self._lock:
            self.events = [e for e in self.events if (e[0], e[1]) != (scope, key)]

    def purge(self, before: datetime) -> int:
        with self._lock:
            kept = [e for e in self.events if e[2] >= before]
            gone, self.events = len(self.events) - len(kept), kept
            return gone
