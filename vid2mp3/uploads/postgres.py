"""The UploadRepository on PostgreSQL (table `uploads`, migration 0005).

The write lease and the offset are guarded by single conditional UPDATEs: PostgreSQL serialises
two of them on the row lock and re-checks the WHERE of the second against the first's result, so
two PATCHes racing for one offset cannot both take the lease, and a holder that lost its lease
cannot move the offset.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import Conflict
from vid2mp3.jobs.postgres import parse_uuid
from vid2mp3.uploads import Upload

_COLUMNS = (
    'id, owner_id, owner_email, length, "offset", carry, metadata, filename, content_type, bitrate, options, '
    "correlation_id, created_at, expires_at, finished_at"
)
# A live lease: someone is writing right now.
_LEASED = "writer IS NOT NULL AND writer_until > now()"

__all__ = ["PostgresUploadRepository"]


def _upload(row: dict[str, Any]) -> Upload:
    return Upload(
        id=str(row["id"]),
        owner_id=str(row["owner_id"]),
        owner_email=str(row["owner_email"]),
        length=int(row["length"]),
        offset=int(row["offset"]),
        carry=bytes(row["carry"] or b""),
        metadata=str(row["metadata"]),
        filename=str(row["filename"]),
        content_type=str(row["content_type"]),
        bitrate=str(row["bitrate"]),
        options=dict(row["options"] or {}),
        correlation_id=str(row["correlation_id"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        finished_at=row["finished_at"],
    )


class PostgresUploadRepository:
    def __init__(self, db: Postgres) -> None:
        self._db = db

    def _one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._db.transaction() as conn:
            return conn.execute(sql.encode(), params).fetchone()

    def create(self, upload: Upload) -> None:
        uid, owner = parse_uuid(upload.id), parse_uuid(upload.owner_id)
        if uid is None or owner is None:
            raise ValueError("upload and owner ids must be UUIDs")
        row = self._one(
            "INSERT INTO uploads (id, owner_id, owner_email, length, metadata, filename, content_type, bitrate, "
            "options, correlation_id, created_at, updated_at, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
            (uid, owner, upload.owner_email, upload.length, upload.metadata, upload.filename, upload.content_type,
             upload.bitrate, Jsonb(upload.options), upload.correlation_id, upload.created_at, upload.created_at,
             upload.expires_at),
        )
        if row is None:
            raise Conflict("An upload with this id already exists.", code="upload_exists")

    def get(self, upload_id: str, owner_id: str) -> Upload | None:
        uid, owner = parse_uuid(upload_id), parse_uuid(owner_id)
        if uid is None or owner is None:
            return None
        row = self._one(f"SELECT {_COLUMNS} FROM uploads WHERE id = %s AND owner_id = %s",  # noqa: S608
                        (uid, owner))
        return _upload(row) if row is not None else None

    def claim(self, upload_id: str, owner_id: str, offset: int, token: str, lease_s: float) -> Upload | None:
        uid, owner, writer = parse_uuid(upload_id), parse_uuid(owner_id), parse_uuid(token)
        if uid is None or owner is None or writer is None:
            return None
        row = self._one(
            "UPDATE uploads SET writer = %s, writer_until = now() + make_interval(secs => %s) "  # noqa: S608
            'WHERE id = %s AND owner_id = %s AND "offset" = %s AND finished_at IS NULL AND expires_at > now() '
            f"AND NOT ({_LEASED}) RETURNING {_COLUMNS}",
            (writer, float(lease_s), uid, owner, offset),
        )
        return _upload(row) if row is not None else None

    def advance(self, upload_id: str, token: str, offset: int, new_offset: int, carry: bytes) -> bool:
        uid, writer = parse_uuid(upload_id), parse_uuid(token)
        if uid is None or writer is None:
            return False
        row = self._one(
            'UPDATE uploads SET "offset" = %s, carry = %s, writer = NULL, writer_until = NULL, updated_at = now() '
            'WHERE id = %s AND writer = %s AND "offset" = %s AND finished_at IS NULL RETURNING id',
            (new_offset, carry, uid, writer, offset),
        )
        return row is not None

    def finish(self, upload_id: str, token: str) -> bool:
        uid, writer = parse_uuid(upload_id), parse_uuid(token)
        if uid is None or writer is None:
            return False
        row = self._one(
            "UPDATE uploads SET \"offset\" = length, carry = ''::bytea, writer = NULL, writer_until = NULL, "
            "finished_at = now(), updated_at = now() WHERE id = %s AND writer = %s AND finished_at IS NULL "
            "RETURNING id",
            (uid, writer),
        )
        return row is not None

    def release(self, upload_id: str, token: str) -> None:
        uid, writer = parse_uuid(upload_id), parse_uuid(token)
        if uid is None or writer is None:
            return
        self._one("UPDATE uploads SET writer = NULL, writer_until = NULL WHERE id = %s AND writer = %s "
                  "RETURNING id", (uid, writer))

    def end(self, upload_id: str, owner_id: str) -> Upload | None:
        uid, owner = parse_uuid(upload_id), parse_uuid(owner_id)
        if uid is None or owner is None:
            return None
        row = self._one(
            "UPDATE uploads SET expires_at = least(expires_at, now()), updated_at = now() "  # noqa: S608
            f"WHERE id = %s AND owner_id = %s AND finished_at IS NULL AND NOT ({_LEASED}) RETURNING {_COLUMNS}",
            (uid, owner),
        )
        return _upload(row) if row is not None else None

    def expired(self, limit: int) -> list[Upload]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM uploads WHERE expires_at < now() AND NOT ({_LEASED}) "  # noqa: S608
                "ORDER BY expires_at LIMIT %s".encode(),
                (limit,),
            ).fetchall()
        return [_upload(r) for r in rows]

    def remove(self, upload_id: str) -> None:
        uid = parse_uuid(upload_id)
        if uid is not None:
            self._one("DELETE FROM uploads WHERE id = %s RETURNING id", (uid,))

    def expire_owner(self, owner_id: str) -> list[Upload]:
        owner = parse_uuid(owner_id)
        if owner is None:
            return []
        with self._db.transaction() as conn:
            rows = conn.execute(
                "UPDATE uploads SET expires_at = least(expires_at, now()), updated_at = now() "  # noqa: S608
                f"WHERE owner_id = %s RETURNING {_COLUMNS}".encode(), (owner,)).fetchall()
        return [_upload(r) for r in rows]
