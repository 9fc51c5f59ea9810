"""The JobRepository on PostgreSQL (table `jobs`, migration 0002).

Every state transition is a single conditional statement,
``UPDATE jobs SET ... WHERE id = %s AND status IN (...) AND deleted_at IS NULL RETURNING ...``, so
two deliveries of the same message racing each other cannot both win: PostgreSQL serialises the
two UPDATEs on the row lock and re-evaluates the WHERE of the second against the first's result.

Ids that are not UUIDs never reach the database: they are unknown jobs (None / False), so a
malformed id in a URL is a 404 like any other unknown id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict
from vid2mp3.jobs import Job, Mp3Info, Status

_COLUMNS = (
    "id, owner_id, owner_email, filename, content_type, size, sha256, video_id, bitrate, correlation_id, "
    "created_at, updated_at, status, progress, duration_s, error_code, error_message, mp3_id, mp3_size, "
    "mp3_duration_s, mp3_bitrate, published_at, extra, expires_at, callback_url, source_removed_at"
)
_PLACEHOLDERS = ", ".join(["%s"] * len(_COLUMNS.split(",")))
# Neither deleted nor expired: an expired job is gone for its owner at once, before the sweep removes it.
_LIVE = "deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
_OPEN = "status IN ('queued', 'converting')"

__all__ = ["PostgresJobRepository", "parse_uuid"]


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (canonical or hex form)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _job(row: dict[str, Any]) -> Job:
    mp3 = None
    if row["mp3_id"] is not None:
        mp3 = Mp3Info(
            object_id=str(row["mp3_id"]),
            size=int(row["mp3_size"]),
            duration_s=float(row["mp3_duration_s"] or 0.0),
            bitrate=str(row["mp3_bitrate"] or ""),
        )
    status: Status = row["status"]
    return Job(
        id=str(row["id"]),
        owner_id=str(row["owner_id"]),
        owner_email=str(row["owner_email"]),
        filename=str(row["filename"]),
        content_type=str(row["content_type"]),
        size=int(row["size"]),
        sha256=None if row["sha256"] is None else str(row["sha256"]),
        video_id=str(row["video_id"]),
        bitrate=str(row["bitrate"]),
        correlation_id=str(row["correlation_id"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=status,
        progress=int(row["progress"]),
        duration_s=None if row["duration_s"] is None else float(row["duration_s"]),
        error_code=row["error_code"],
        error_message=row["error_message"],
        mp3=mp3,
        published_at=row["published_at"],
        extra=dict(row["extra"] or {}),
        expires_at=row["expires_at"],
        callback_url=row["callback_url"],
        source_removed_at=row["source_removed_at"],
    )


class PostgresJobRepository:
    def __init__(self, db: Postgres, *, retention_s: float = 72 * 3600.0) -> None:
        self._db = db
        # A finished job expires this long after it finished (RETENTION_HOURS).
        self._retention_s = float(retention_s)

    def _one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._db.transaction() as conn:
            return conn.execute(sql.encode(), params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._db.transaction() as conn:
            return conn.execute(sql.encode(), params).fetchall()

    # --- writes by the upload function -------------------------------------------------------------

    def create(self, job: Job) -> None:
        """Insert `job` as given (its id, timestamps and status); Conflict when the id exists."""
        owner = parse_uuid(job.owner_id)
        job_id = parse_uuid(job.id)
        if owner is None or job_id is None:
            raise ValueError("job and owner ids must be UUIDs")
        mp3 = job.mp3
        row = self._one(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608 - constant columns
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            (
                job_id, owner, job.owner_email, job.filename, job.content_type, job.size, job.sha256,
                job.video_id, job.bitrate, job.correlation_id, job.created_at, job.updated_at, job.status,
                job.progress, job.duration_s, job.error_code, job.error_message,
                mp3.object_id if mp3 else None, mp3.size if mp3 else None,
                mp3.duration_s if mp3 else None, mp3.bitrate if mp3 else None,
                job.published_at, Jsonb(job.extra), job.expires_at, job.callback_url, job.source_removed_at,
            ),
        )
        if row is None:
            raise Conflict("A job with this id already exists.", code="job_exists")

    def mark_published(self, job_id: str) -> None:
        """Record the broker's confirm (the first one counts)."""
        jid = parse_uuid(job_id)
        if jid is None:
            return
        self._one(
            "UPDATE jobs SET published_at = now() WHERE id = %s AND published_at IS NULL RETURNING id", (jid,)
        )

    # --- reads --------------------------------------------------------------------------------------

    def get(self, job_id: str, owner_id: str | None = None) -> Job | None:
        jid = parse_uuid(job_id)
        if jid is None:
            return None
        if owner_id is None:
            row = self._one(f"SELECT {_COLUMNS} FROM jobs WHERE id = %s AND {_LIVE}", (jid,))  # noqa: S608
        else:
            owner = parse_uuid(owner_id)
            if owner is None:
                return None
            row = self._one(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = %s AND owner_id = %s AND {_LIVE}",  # noqa: S608
                (jid, owner),
            )
        return _job(row) if row is not None else None

    def list_for_owner(self, owner_id: str, limit: int, after: tuple[datetime, str] | None) -> list[Job]:
        owner = parse_uuid(owner_id)
        if owner is None or limit <= 0:
            return []
        if after is None:
            rows = self._all(
                f"SELECT {_COLUMNS} FROM jobs WHERE owner_id = %s AND {_LIVE} "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT %s",
                (owner, limit),
            )
        else:
            after_id = parse_uuid(after[1])
            if after_id is None:
                return []
            rows = self._all(
                f"SELECT {_COLUMNS} FROM jobs WHERE owner_id = %s AND {_LIVE} "  # noqa: S608
                "AND (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT %s",
                (owner, after[0], after_id, limit),
            )
        return [_job(r) for r in rows]

    def unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'queued' AND published_at IS NULL AND {_LIVE} "  # noqa: S608
            "AND created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT %s",
            (float(older_than_s), limit),
        )
        return [_job(r) for r in rows]

    def claim_unpublished(self, older_than_s: float, limit: int = 100) -> list[Job]:
        # The publish_attempted_at stamp keeps a later run from taking them again for `older_than_s`.
        return self._claim("status = 'queued' AND published_at IS NULL", "created_at",
                           "publish_attempted_at", older_than_s, limit,
                           also_set="publish_attempts = publish_attempts + 1, ")

    def _claim(self, where: str, age_column: str, stamp_column: str, older_than_s: float, limit: int,
               also_set: str = "") -> list[Job]:
        """Rows matching `where`, older than `older_than_s` by `age_column` and not claimed within that
        time, stamped in one UPDATE. SKIP LOCKED: a concurrent re-drive takes other rows instead of
        waiting for these."""
        rows = self._all(
            f"UPDATE jobs SET {also_set}{stamp_column} = now() "  # noqa: S608 - fixed column names only
            f"WHERE id IN (SELECT id FROM jobs WHERE {where} AND {_LIVE} "
            f"AND {age_column} < now() - make_interval(secs => %s) "
            f"AND ({stamp_column} IS NULL OR {stamp_column} < now() - make_interval(secs => %s)) "
            f"ORDER BY {age_column} LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_COLUMNS}",
            (float(older_than_s), float(older_than_s), limit),
        )
        return sorted((_job(r) for r in rows), key=lambda j: (j.created_at, j.id))

    # --- transitions by the convert function ---------------------------------------------------------

    def _from_open(self, job_id: str, assignments: str, params: tuple[Any, ...]) -> Job | None:
        """One UPDATE of a live queued/converting job (`assignments` are fixed SQL with %s for
        `params`); None when the job is gone or already finished. A delivered message was published,
        whatever its confirm said: the re-drive must not repeat it."""
        jid = parse_uuid(job_id)
        if jid is None:
            return None
        row = self._one(
            f"UPDATE jobs SET {assignments}, updated_at = now(), "  # noqa: S608 - fixed SQL only
            "published_at = coalesce(published_at, now()) "
            f"WHERE id = %s AND {_OPEN} AND {_LIVE} RETURNING {_COLUMNS}",
            (*params, jid),
        )
        return _job(row) if row is not None else None

    def start_conversion(self, job_id: str) -> Job | None:
        return self._from_open(job_id, "status = 'converting', progress = 0, started_at = now()", ())

    def set_progress(self, job_id: str, progress: int) -> None:
        jid = parse_uuid(job_id)
        if jid is None:
            return
        self._one(
            "UPDATE jobs SET progress = %s, updated_at = now() "  # noqa: S608
            f"WHERE id = %s AND status = 'converting' AND {_LIVE} RETURNING id",
            (max(0, min(100, int(progress))), jid),
        )

    def mark_done(self, job_id: str, mp3: Mp3Info) -> bool:
        return self._from_open(
            job_id,
            "status = 'done', progress = 100, mp3_id = %s, mp3_size = %s, mp3_duration_s = %s, "
            "mp3_bitrate = %s, error_code = NULL, error_message = NULL, finished_at = now(), "
            "expires_at = now() + make_interval(secs => %s)",
            (mp3.object_id, mp3.size, mp3.duration_s, mp3.bitrate, self._retention_s),
        ) is not None

    def mark_failed(self, job_id: str, code: str, message: str) -> bool:
        return self._from_open(
            job_id, "status = 'failed', error_code = %s, error_message = %s, finished_at = now(), "
            "expires_at = now() + make_interval(secs => %s)", (code, message, self._retention_s)
        ) is not None

    # --- the event outbox ---------------------------------------------------------------------------

    def mark_event_published(self, job_id: str) -> None:
        jid = parse_uuid(job_id)
        if jid is None:
            return
        self._one("UPDATE jobs SET event_published_at = now() WHERE id = %s AND event_published_at IS NULL "
                  "RETURNING id", (jid,))

    def claim_unpublished_events(self, older_than_s: float, limit: int = 100) -> list[Job]:
        return self._claim("status IN ('done', 'failed') AND event_published_at IS NULL", "finished_at",
                           "event_attempted_at", older_than_s, limit)

    # --- DELETE ------------------------------------------------------------------------------------

    def mark_deleted(self, job_id: str, owner_id: str) -> Job | None:
        jid, owner = parse_uuid(job_id), parse_uuid(owner_id)
        if jid is None or owner is None:
            return None
        row = self._one(
            "UPDATE jobs SET deleted_at = coalesce(deleted_at, now()), updated_at = now() "  # noqa: S608
            f"WHERE id = %s AND owner_id = %s RETURNING {_COLUMNS}",
            (jid, owner),
        )
        return _job(row) if row is not None else None

    def delete(self, job_id: str, owner_id: str) -> Job | None:
        jid, owner = parse_uuid(job_id), parse_uuid(owner_id)
        if jid is None or owner is None:
            return None
        # Its webhook deliveries go with it (they name its callback URL).
        row = self._one(
            f"WITH gone AS (DELETE FROM jobs WHERE id = %s AND owner_id = %s RETURNING {_COLUMNS}), "  # noqa: S608
            "hooks AS (DELETE FROM webhook_deliveries WHERE job_id IN (SELECT id FROM gone)) SELECT * FROM gone",
            (jid, owner),
        )
        return _job(row) if row is not None else None

    def deleting(self, older_than_s: float, limit: int = 100) -> list[Job]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM jobs WHERE deleted_at IS NOT NULL "  # noqa: S608
            "AND deleted_at < now() - make_interval(secs => %s) ORDER BY deleted_at LIMIT %s",
            (float(older_than_s), limit),
        )
        return [_job(r) for r in rows]

    # --- retention and accounts (migration 0008) ----------------------------------------------------

    def expire(self, now: datetime, limit: int = 100) -> list[Job]:
        rows = self._all(
            "UPDATE jobs SET deleted_at = now() WHERE id IN (SELECT id FROM jobs WHERE deleted_at IS NULL "  # noqa: S608
            "AND expires_at <= %s ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_COLUMNS}",
            (now, limit),
        )
        return [_job(r) for r in rows]

    def mark_source_removed(self, job_id: str) -> None:
        jid = parse_uuid(job_id)
        if jid is not None:
            self._one("UPDATE jobs SET source_removed_at = coalesce(source_removed_at, now()) WHERE id = %s "
                      "RETURNING id", (jid,))

    def mark_owner_deleted(self, owner_id: str) -> list[Job]:
        owner = parse_uuid(owner_id)
        if owner is None:
            return []
        rows = self._all(
            "UPDATE jobs SET deleted_at = coalesce(deleted_at, now()), updated_at = now() "  # noqa: S608
            f"WHERE owner_id = %s RETURNING {_COLUMNS}",
            (owner,),
        )
        return [_job(r) for r in rows]
