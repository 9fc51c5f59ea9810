"""The delivery record: one row per (job, outcome) that makes a successful webhook happen at most once.

`claim` holds the record exclusively for a `with` block (creating it 'pending' if new), as the
notification record does: in PostgreSQL a row lock, so a second delivery of the same message waits for
the first to finish its POST, then finds the record 'delivered'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from vid2mp3.db.postgres import Connection, Postgres
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs.postgres import parse_uuid
from vid2mp3.webhooks import Attempt, DeliveryRecord, Kind, Status


class DeliveryClaim(Protocol):
    @property
    def record(self) -> DeliveryRecord: ...

    def record_attempt(self, attempt: Attempt, status: Status, next_attempt_at: datetime | None = None) -> None:
        """Add a try; `status` is what the record is now (pending: retried at `next_attempt_at`)."""


class DeliveryLog(Protocol):
    def claim(self, job_id: str, kind: Kind, *, owner_id: str, url: str, event_id: str,
              correlation_id: str | None) -> AbstractContextManager[DeliveryClaim]: ...

    def for_job(self, job_id: str) -> list[DeliveryRecord]: ...

    def claim_due(self, limit: int, reclaim_after_s: float) -> list[DeliveryRecord]:
        """Pending deliveries whose next try is due, not claimed within `reclaim_after_s`; each is claimed."""

    def delete_for_owner(self, owner_id: str) -> int: ...


_COLUMNS = "job_id, kind, owner_id, url, event_id, status, attempts, next_attempt_at, delivered_at"


def _record(row: Mapping[str, Any]) -> DeliveryRecord:
    return DeliveryRecord(
        job_id=str(row["job_id"]), kind=row["kind"], owner_id=str(row["owner_id"]), url=str(row["url"]),
        event_id=str(row["event_id"]), status=row["status"],
        attempts=tuple(Attempt.from_json(a) for a in (row["attempts"] or [])),
        next_attempt_at=row["next_attempt_at"], delivered_at=row["delivered_at"],
    )


class _PostgresClaim:
    def __init__(self, conn: Connection, record: DeliveryRecord) -> None:
        self._conn = conn
        self._record = record

    @property
    def record(self) -> DeliveryRecord:
        return self._record

    def record_attempt(self, attempt: Attempt, status: Status, next_attempt_at: datetime | None = None) -> None:
        try:
            row = self._conn.execute(
                f"UPDATE webhook_deliveries SET attempts = attempts || %s, status = %s, "  # noqa: S608 - fixed text
                "next_attempt_at = coalesce(%s, next_attempt_at), updated_at = now(), "
                "delivered_at = CASE WHEN %s = 'delivered' THEN now() END "
                f"WHERE job_id = %s AND kind = %s RETURNING {_COLUMNS}",
                (Jsonb([attempt.to_json()]), status, next_attempt_at, status, self._record.job_id, self._record.kind),
            ).fetchone()
        except psycopg.errors.IdleInTransactionSessionTimeout as exc:
            raise DependencyUnavailable("The database ended a webhook's transaction (held too long).") from exc
        assert row is not None  # locked by this transaction
        self._record = _record(row)


class PostgresDeliveryLog:
    """The `webhook_deliveries` table (migration 0008)."""

    def __init__(self, db: Postgres, *, lock_timeout_s: float = 20.0, hold_timeout_s: float = 60.0) -> None:
        self._db = db
        self._lock_timeout_ms = int(lock_timeout_s * 1000)
        self._hold_timeout_ms = int(hold_timeout_s * 1000)

    @contextmanager
    def claim(self, job_id: str, kind: Kind, *, owner_id: str, url: str, event_id: str,
              correlation_id: str | None) -> Iterator[DeliveryClaim]:
        with self._db.transaction() as conn:
            conn.execute("SELECT set_config('lock_timeout', %s, true), "
                         "set_config('idle_in_transaction_session_timeout', %s, true)",
                         (f"{self._lock_timeout_ms}ms", f"{self._hold_timeout_ms}ms"))
            conn.execute(
                "INSERT INTO webhook_deliveries (job_id, kind, owner_id, url, event_id, correlation_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job_id, kind) DO NOTHING",
                (job_id, kind, owner_id, url, event_id, correlation_id),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE job_id = %s AND kind = %s FOR UPDATE",  # noqa: S608
                (job_id, kind),
            ).fetchone()
            assert row is not None
            yield _PostgresClaim(conn, _record(row))

    def for_job(self, job_id: str) -> list[DeliveryRecord]:
        jid = parse_uuid(job_id)
        if jid is None:
            return []
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE job_id = %s "  # noqa: S608
                                "ORDER BY created_at", (jid,)).fetchall()
        return [_record(r) for r in rows]

    def claim_due(self, limit: int, reclaim_after_s: float) -> list[DeliveryRecord]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "UPDATE webhook_deliveries SET republished_at = now() WHERE (job_id, kind) IN ("  # noqa: S608
                "SELECT job_id, kind FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now() "
                "AND (republished_at IS NULL OR republished_at < now() - make_interval(secs => %s)) "
                f"ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
                (float(reclaim_after_s), limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def delete_for_owner(self, owner_id: str) -> int:
        owner = parse_uuid(owner_id)
        if owner is None:
            return 0
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM webhook_deliveries WHERE owner_id = %s", (owner,)).rowcount
