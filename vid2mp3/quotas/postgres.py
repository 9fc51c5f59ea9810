"""Usage and rate limits on PostgreSQL: sums over the jobs and uploads tables, and the rate_events log."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from vid2mp3.db.postgres import Postgres
from vid2mp3.jobs.postgres import parse_uuid
from vid2mp3.quotas import Usage, Window

# First key of pg_advisory_xact_lock(int, int): "rate", so no other lock of the project collides.
_LOCK_NAMESPACE = 0x72617465

_USAGE = """
SELECT
  (SELECT coalesce(sum(CASE WHEN source_removed_at IS NULL THEN size ELSE 0 END + coalesce(mp3_size, 0)), 0)
     FROM jobs WHERE owner_id = %(owner)s AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
  + (SELECT coalesce(sum(length), 0) FROM uploads
     WHERE owner_id = %(owner)s AND finished_at IS NULL AND expires_at > now()) AS storage_bytes,
  (SELECT count(*) FROM jobs WHERE owner_id = %(owner)s AND status IN ('queued', 'converting')
     AND deleted_at IS NULL)
  + (SELECT count(*) FROM uploads WHERE owner_id = %(owner)s AND finished_at IS NULL AND expires_at > now())
     AS active_jobs,
  (SELECT min(expires_at) FROM jobs WHERE owner_id = %(owner)s AND deleted_at IS NULL AND expires_at > now())
     AS next_expiry
"""


class PostgresUsageStore:
    def __init__(self, db: Postgres) -> None:
        self._db = db

    def usage(self, owner_id: str) -> Usage:
        owner = parse_uuid(owner_id)
        if owner is None:
            return Usage(0, 0, None)
        with self._db.transaction() as conn:
            row = conn.execute(_USAGE, {"owner": owner}).fetchone()
        assert row is not None
        return Usage(int(row["storage_bytes"] or 0), int(row["active_jobs"] or 0),  # type: ignore[call-overload]
                     row["next_expiry"])  # type: ignore[arg-type]


def _lock_id(scope: str, key: str) -> int:
    return int(hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()[:8], 16) - 2**31


class PostgresRateLimiter:
    """A sliding-window log: one row per admitted event. The (scope, key) is locked while it is counted
    and recorded, so concurrent requests are admitted one after the other and never past the limit."""

    def __init__(self, db: Postgres) -> None:
        self._db = db

    def hit(self, scope: str, key: str, limit: int, window_s: float, now: datetime) -> Window | None:
        since = now - timedelta(seconds=window_s)
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NAMESPACE, _lock_id(scope, key)))
            row = conn.execute("SELECT count(*) AS n, min(at) AS oldest FROM rate_events "
                               "WHERE scope = %s AND key = %s AND at > %s", (scope, key, since)).fetchone()
            assert row is not None
            count, oldest = int(row["n"]), row["oldest"]  # type: ignore[call-overload]
            if count >= limit:
                return Window(count, oldest)  # type: ignore[arg-type]
            conn.execute("INSERT INTO rate_events (scope, key, at) VALUES (%s, %s, %s)", (scope, key, now))
        return None

    def window(self, scope: str, key: str, window_s: float, now: datetime) -> Window:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT count(*) AS n, min(at) AS oldest FROM rate_events "
                               "WHERE scope = %s AND key = %s AND at > %s",
                               (scope, key, now - timedelta(seconds=window_s))).fetchone()
        assert row is not None
        return Window(int(row["n"]), row["oldest"])  # type: ignore[call-overload, arg-type]

    def forget(self, scope: str, key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM rate_events WHERE scope = %s AND key = %s", (scope, key))

    def purge(self, before: datetime) -> int:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM rate_events WHERE at < %s", (before,)).rowcount
