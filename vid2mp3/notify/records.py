"""The sent record: one row per (job, outcome) that makes a notification happen at most once.

`claim` holds the record exclusively for the duration of a `with` block, creating it ('pending') if it
is new. Whatever the block marks is committed when the block ends normally; an exception rolls it back
(and, for a new record, removes it). In PostgreSQL the hold is a row lock: a second delivery of the same
message waits for the first to finish, then finds the record 'sent'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import psycopg

from vid2mp3.db.postgres import Connection, Postgres
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.notify import Kind

Status = Literal["pending", "sent", "undeliverable"]
ERROR_TEXT_LIMIT = 1000


@dataclass(frozen=True)
class NotificationRecord:
    job_id: str
    kind: Kind
    recipient: str
    status: Status
    message_id: str
    correlation_id: str | None
    attempts: int
    last_error: str | None
    smtp_code: int | None
    sent_at: datetime | None


class Claim(Protocol):
    """A record held by the caller. Mark it at most once."""

    @property
    def record(self) -> NotificationRecord: ...

    def mark_sent(self) -> None:
        """The server accepted the message."""

    def mark_undeliverable(self, reason: str, smtp_code: int | None = None) -> None:
        """It can never be delivered to this recipient; counts as done."""

    def record_failure(self, reason: str, smtp_code: int | None = None) -> None:
        """This attempt failed and will be retried; stays 'pending'."""


class NotificationLog(Protocol):
    def claim(
        self, job_id: str, kind: Kind, *, recipient: str, message_id: str, correlation_id: str | None
    ) -> AbstractContextManager[Claim]:
        """Hold the (job_id, kind) record, creating it as 'pending' with these values if it does not exist.

        Raises DependencyUnavailable when the store cannot be reached, or the record stays held by
        someone else for too long.
        """

    def get(self, job_id: str, kind: Kind) -> NotificationRecord | None: ...


_COLUMNS = ("job_id, kind, recipient, status, message_id, correlation_id, attempts, last_error, smtp_code, "
            "sent_at")


def _record(row: Mapping[str, Any]) -> NotificationRecord:
    return NotificationRecord(
        job_id=str(row["job_id"]),
        kind=row["kind"],
        recipient=row["recipient"],
        status=row["status"],
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        smtp_code=row["smtp_code"],
        sent_at=row["sent_at"],
    )


class _PostgresClaim:
    def __init__(self, conn: Connection, record: NotificationRecord) -> None:
        self._conn = conn
        self._record = record

    @property
    def record(self) -> NotificationRecord:
        return self._record

    def _update(self, assignments: str, params: tuple[object, ...]) -> None:
        try:
            row = self._conn.execute(
                f"UPDATE notifications SET {assignments}, attempts = attempts + 1, updated_at = now() "  # noqa: S608 - fixed text
                f"WHERE job_id = %s AND kind = %s RETURNING {_COLUMNS}",
                (*params, self._record.job_id, self._record.kind),
            ).fetchone()
        except psycopg.errors.IdleInTransactionSessionTimeout as exc:
            # Held longer than hold_timeout_s: the server ended the session, and the record is free again.
            raise DependencyUnavailable("The database ended a notification's transaction (held too long).") from exc
        assert row is not None  # the row is locked by this transaction
        self._record = _record(row)

    def mark_sent(self) -> None:
        self._update("status = 'sent', sent_at = now()", ())

    def mark_undeliverable(self, reason: str, smtp_code: int | None = None) -> None:
        self._update("status = 'undeliverable', last_error = %s, smtp_code = %s",
                     (reason[:ERROR_TEXT_LIMIT], smtp_code))

    def record_failure(self, reason: str, smtp_code: int | None = None) -> None:
        self._update("last_error = %s, smtp_code = %s", (reason[:ERROR_TEXT_LIMIT], smtp_code))


class PostgresNotificationLog:
    """The `notifications` table (migration 0003)."""

    def __init__(self, db: Postgres, *, lock_timeout_s: float = 20.0, hold_timeout_s: float = 120.0) -> None:
        self._db = db
        # How long a delivery waits for another one that holds the same record (and is talking to the
        # SMTP server) before it gives up and lets the broker redeliver; shorter than the function's timeout.
        self._lock_timeout_ms = int(lock_timeout_s * 1000)
        # How long the holder may stay silent inside the transaction (it is talking to the SMTP server)
        # before PostgreSQL ends its session and frees the record: a holder that vanished without closing
        # its connection must not block the record for good.
        self._hold_timeout_ms = int(hold_timeout_s * 1000)

    @contextmanager
    def claim(
        self, job_id: str, kind: Kind, *, recipient: str, message_id: str, correlation_id: str | None
    ) -> Iterator[Claim]:
        with self._db.transaction() as conn:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, true), "
                "set_config('idle_in_transaction_session_timeout', %s, true)",
                (f"{self._lock_timeout_ms}ms", f"{self._hold_timeout_ms}ms"),
            )
            # A concurrent insert of the same key waits here until the other transaction ends.
            conn.execute(
                "INSERT INTO notifications (job_id, kind, recipient, message_id, correlation_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job_id, kind) DO NOTHING",
                (job_id, kind, recipient, message_id, correlation_id),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE job_id = %s AND kind = %s FOR UPDATE",  # noqa: S608
                (job_id, kind),
            ).fetchone()
            assert row is not None  # inserted above, or there already
            yield _PostgresClaim(conn, _record(row))

    def get(self, job_id: str, kind: Kind) -> NotificationRecord | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE job_id = %s AND kind = %s",  # noqa: S608
                (job_id, kind),
            ).fetchone()
        return None if row is None else _record(row)
