"""The quotas of one account, applied to both upload paths (POST /videos and tus POST /uploads):

- active jobs (queued + converting, and unfinished uploads, which become jobs): 429, frees up when one
  of them finishes (Retry-After: a guess, ACTIVE_RETRY_S);
- bytes stored (videos kept, MP3s, unfinished uploads at their full Upload-Length): 413, frees up when
  the next file expires (named) or when the user deletes videos;
- uploads started per hour (a sliding window; every upload started counts, refused ones too): 429 with
  Retry-After = when the oldest upload in the window leaves it.

A refused upload stores nothing and does not count towards the hourly rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vid2mp3.errors import PayloadTooLarge, TooManyRequests
from vid2mp3.quotas import UPLOADS, RateLimiter, UsageStore, Window
from vid2mp3.settings import Settings

HOUR_S = 3600.0
ACTIVE_RETRY_S = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Quotas:
    settings: Settings
    usage: UsageStore
    rates: RateLimiter
    clock: Callable[[], datetime] = _utcnow


def seconds_until_free(window: Window, window_s: float, now: datetime) -> int:
    """Whole seconds until the oldest event of a full window leaves it (at least 1)."""
    if window.oldest is None:
        return 1
    return max(1, math.ceil(window.oldest.timestamp() + window_s - now.timestamp()))


def check_upload(q: Quotas, owner_id: str, size: int) -> None:
    """Admit an upload of `size` bytes by `owner_id` (and count it), or raise naming the quota."""
    s = q.settings
    used = q.usage.usage(owner_id)
    if used.active_jobs >= s.quota_active_jobs:
        raise TooManyRequests(ACTIVE_RETRY_S, f"Quota of {s.quota_active_jobs} active jobs reached (queued, "
                              "converting, or uploads not finished): it frees up as soon as one of them finishes.",
                              code="active_jobs_quota_exceeded")
    if used.storage_bytes + size > s.quota_storage_bytes:
        frees = (f"the next of your files expires at {used.next_expiry.isoformat()}" if used.next_expiry
                 else "you delete videos")
        raise PayloadTooLarge(f"Storage quota of {s.quota_storage_bytes} bytes: {used.storage_bytes} are used and "
                              f"this upload needs {size}. It frees up when {frees} (or when you delete videos).",
                              code="storage_quota_exceeded")
    now = q.clock()
    full = q.rates.hit(UPLOADS, owner_id, s.quota_uploads_per_hour, HOUR_S, now)
    if full is not None:
        wait = seconds_until_free(full, HOUR_S, now)
        raise TooManyRequests(wait, f"Quota of {s.quota_uploads_per_hour} uploads per hour reached: the next one is "
                              f"possible in {wait} s.", code="upload_rate_exceeded")


def report(q: Quotas, owner_id: str) -> dict[str, Any]:
    """Usage against each quota, as GET /auth/me shows it."""
    s = q.settings
    used = q.usage.usage(owner_id)
    now = q.clock()
    window = q.rates.window(UPLOADS, owner_id, HOUR_S, now)
    return {
        "storage_bytes": {"used": used.storage_bytes, "limit": s.quota_storage_bytes,
                          "next_expiry": used.next_expiry.isoformat() if used.next_expiry else None},
        "active_jobs": {"used": used.active_jobs, "limit": s.quota_active_jobs},
        "uploads_per_hour": {"used": window.count, "limit": s.quota_uploads_per_hour,
                             "frees_up_in_s": seconds_until_free(window, HOUR_S, now) if window.count else None},
        "retention_hours": s.retention_hours,
    }
