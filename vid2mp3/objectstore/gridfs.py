"""GridFS adapter (pymongo): the object store on MongoDB or any MongoDB-wire server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import gridfs
import gridfs.errors
import pymongo
import pymongo.errors
from pymongo.database import Database

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore import StoredObject

CHUNK_SIZE = 255 * 1024


class GridFSStore:
    def __init__(self, uri: str, database: str, *, timeout_ms: int = 5000) -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, appname="vid2mp3"
        )
        self._db: Database[dict[str, Any]] = self._client[database]

    def _bucket(self, bucket: str) -> gridfs.GridFSBucket:
        return gridfs.GridFSBucket(self._db, bucket_name=bucket, chunk_size_bytes=CHUNK_SIZE)

    def put(
        self, bucket: str, object_id: str, source: BinaryIO, *, filename: str, metadata: Mapping[str, Any]
    ) -> StoredObject:
        try:
            stream = self._bucket(bucket).open_upload_stream_with_id(
                object_id, filename, metadata=dict(metadata)
            )
            try:
                while chunk := source.read(CHUNK_SIZE * 4):
                    stream.write(chunk)
                # The files document is written by close(), after every chunk.
                stream.close()
            except BaseException:
                # pymongo's context manager does not delete written chunks when the block raises.
                stream.abort()
                raise
        except gridfs.errors.FileExists:
            raise FileExistsError(object_id) from None
        except pymongo.errors.PyMongoError as exc:
            self._delete_chunks(bucket, object_id)
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return StoredObject(object_id, filename, stream.length, dict(metadata))

    def _delete_chunks(self, bucket: str, object_id: str) -> None:
        # When the store is down this fails too; the chunks stay as orphans for a sweep to remove.
        with contextlib.suppress(pymongo.errors.PyMongoError):
            self._db[f"{bucket}.chunks"].delete_many({"files_id": object_id})

    def stat(self, bucket: str, object_id: str) -> StoredObject | None:
        try:
            doc = self._db[f"{bucket}.files"].find_one({"_id": object_id})
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc
        if doc is None:
            return None
        return StoredObject(object_id, doc.get("filename", ""), int(doc["length"]), doc.get("metadata") or {})

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            out = self._bucket(bucket).open_download_stream(object_id)
        except gridfs.errors.NoFile:
            raise KeyError(object_id) from None
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return self._iter(out, start, end)

    @staticmethod
    def _iter(out: Any, start: int, end: int | None) -> Iterator[bytes]:
        with out:
            if start:
                out.seek(start)
            remaining = (out.length if end is None else end) - start
            while remaining > 0:
                chunk = out.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def delete(self, bucket: str, object_id: str) -> None:
        try:
            self._db[f"{bucket}.files"].delete_one({"_id": object_id})
            self._db[f"{bucket}.chunks"].delete_many({"files_id": object_id})
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc

    def ping(self) -> None:
        try:
            self._client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc

    def close(self) -> None:
        self._client.close()
