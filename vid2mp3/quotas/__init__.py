"""Quotas and rate limits of the public service: what one account may store and start, and how often an
address may register.

    __init__.py  the ports: a user's usage, and a sliding-window rate limiter
    postgres.py  both on PostgreSQL (the jobs and uploads tables; rate_events, migration 0008)
    memory.py    fakes over the in-memory job and upload repositories
    service.py   the rules: check an upload against every quota, the usage GET /auth/me shows
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

UPLOADS = "upload"  # rate scope: uploads started by a user (key: the user id)
REGISTRATIONS = "register"  # rate scope: accounts created from an address (key: its digest)


@dataclass(frozen=True)
class Usage:
    storage_bytes: int  # videos kept, MP3s, unfinished uploads at their full length
    active_jobs: int  # queued + converting jobs, and unfinished uploads (each becomes a job)
    next_expiry: datetime | None  # when the first of the user's files is removed (storage frees up)


@dataclass(frozen=True)
class Window:
    count: int  # events within the window
    oldest: datetime | None  # the oldest of them: one frees up a window after it


class UsageStore(Protocol):
    def usage(self, owner_id: str) -> Usage: ...


class RateLimiter(Protocol):
    def hit(self, scope: str, key: str, limit: int, window_s: float, now: datetime) -> Window | None:
        """Record one event for (scope, key) unless `limit` events are already within the window before
        `now`: None when recorded, else that window (the caller says when it frees up)."""

    def window(self, scope: str, key: str, window_s: float, now: datetime) -> Window: ...

    def forget(self, scope: str, key: str) -> None: ...

    def purge(self, before: datetime) -> int:
        """Forget events older than `before` (the scheduled function)."""
