"""GridFS adapter (pymongo): the object store on MongoDB or any MongoDB-wire server.

The standard GridFS layout (``<bucket>.files`` and ``<bucket>.chunks``, 255 KiB chunks, a unique
``(files_id, n)`` index), so any GridFS client reads what this writes and the other way round. The
collections are used directly rather than through ``GridFSBucket``, for flat memory and speed:

- reads: one query per window of READ_WINDOW chunks (about 4 MB, one reply each), sorted by ``n``,
  decoded as raw BSON (only ``data`` is looked at). GridOut's default batches are up to 16 MB decoded
  into dicts; this halves the read time and the client's CPU. Windows rather than one cursor: some
  MongoDB-wire servers (SecantusDB) evaluate a whole query before the first reply, which for a 570 MB
  video is a 0.5 s stall before the first byte and the whole object in the server's memory; a window
  bounds both, on any server, for one round trip per 4 MB. Every chunk is checked (number and
  length), so a missing or short chunk is an error, never a silently short object.
- writes: chunks inserted WRITE_BATCH at a time (about 4 MB; pymongo's GridIn buffers up to 48 MB, which
  made the converter's peak memory grow with the MP3), then the files document, last: an object is
  visible only once all of it is there. Any error deletes the chunks written (all-or-nothing).
  An existing id raises FileExistsError *without touching the existing object* (GridIn's abort after
  a duplicate key deletes every chunk with that id: the existing object's too).
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import gridfs.errors
import pymongo
import pymongo.errors
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.database import Database

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore import CHUNK_SIZE, StoredObject

READ_WINDOW = 16  # chunks per query (and reply)
WRITE_BATCH = 16  # chunks per insert_many
DELETE_BATCH = 512  # chunks per delete_many when a delete has a time budget (128 MiB)

_DUPLICATE_KEY = frozenset({11000, 11001, 12582})


UNAVAILABLE = "The object store is unavailable."


class GridFSStore:
    def __init__(self, uri: str, database: str, *, timeout_ms: int = 5000) -> None:
        self._client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, appname="vid2mp3"
        )
        self._db: Database[dict[str, Any]] = self._client[database]
        self._indexed: set[str] = set()

    def _files(self, bucket: str) -> Collection[dict[str, Any]]:
        return self._db[f"{bucket}.files"]

    def _chunks(self, bucket: str) -> Collection[dict[str, Any]]:
        return self._db[f"{bucket}.chunks"]

    def _ensure_indexes(self, bucket: str) -> None:
        """The GridFS spec's indexes, as GridFSBucket makes them: only while the bucket is empty (so a
        user without the createIndex privilege can write to a prepared bucket), once per bucket."""
        if bucket in self._indexed:
            return
        if self._files(bucket).find_one({}, {"_id": 1}) is None:
            for collection, keys, unique in (
                (self._files(bucket), [("filename", pymongo.ASCENDING), ("uploadDate", pymongo.ASCENDING)], False),
                (self._chunks(bucket), [("files_id", pymongo.ASCENDING), ("n", pymongo.ASCENDING)], True),
            ):
                try:
                    existing = [dict(index["key"]) for index in collection.list_indexes()]
                except pymongo.errors.OperationFailure:
                    existing = []
                if dict(keys) not in existing:
                    collection.create_index(keys, unique=unique)
        self._indexed.add(bucket)

    # --- writing -------------------------------------------------------------------------------------------

    def put(
        self, bucket: str, object_id: str, source: BinaryIO, *, filename: str, metadata: Mapping[str, Any]
    ) -> StoredObject:
        chunks = self._chunks(bucket)
        wrote = False
        try:
            self._ensure_indexes(bucket)
            if self._files(bucket).find_one({"_id": object_id}, {"_id": 1}) is not None:
                raise FileExistsError(object_id)
            length = 0
            batch: list[dict[str, Any]] = []
            n = 0
            while True:
                data = _read_exactly(source, CHUNK_SIZE)
                if data:
                    batch.append({"files_id": object_id, "n": n, "data": data})
                    n += 1
                    length += len(data)
                last = len(data) < CHUNK_SIZE  # a short read is the end of the source
                if batch and (len(batch) == WRITE_BATCH or last):
                    wrote = True
                    chunks.insert_many(batch, ordered=True)
                    batch = []
                if last:
                    break
            # Last: the files document makes the object visible, whole.
            doc = {"_id": object_id, "length": Int64(length), "chunkSize": CHUNK_SIZE,
                   "uploadDate": datetime.datetime.now(tz=datetime.UTC), "filename": filename,
                   "metadata": dict(metadata)}
            self._files(bucket).insert_one(doc)
        except FileExistsError:
            raise
        except (pymongo.errors.DuplicateKeyError, pymongo.errors.BulkWriteError) as exc:
            if _is_duplicate(exc):
                # Someone else's chunks or files document under this id: never delete them.
                raise FileExistsError(object_id) from None
            if wrote:
                self._delete_chunks(bucket, object_id)
            raise DependencyUnavailable(UNAVAILABLE) from exc
        except pymongo.errors.PyMongoError as exc:
            if wrote:
                self._delete_chunks(bucket, object_id)
            raise DependencyUnavailable(UNAVAILABLE) from exc
        except BaseException:
            if wrote:
                self._delete_chunks(bucket, object_id)
            raise
        return StoredObject(object_id, filename, length, dict(metadata))

    def write_chunks(self, bucket: str, object_id: str, first: int, data: bytes) -> None:
        view = memoryview(data)
        batches = [
            [{"files_id": object_id, "n": first + (start + at) // CHUNK_SIZE,
              "data": bytes(view[start + at:start + at + CHUNK_SIZE])}
             for at in range(0, min(WRITE_BATCH * CHUNK_SIZE, len(view) - start), CHUNK_SIZE)]
            for start in range(0, len(view), WRITE_BATCH * CHUNK_SIZE)
        ]
        try:
            self._ensure_indexes(bucket)
            try:
                for batch in batches:
                    self._chunks(bucket).insert_many(batch, ordered=True)
            except (pymongo.errors.DuplicateKeyError, pymongo.errors.BulkWriteError) as exc:
                if not _is_duplicate(exc):
                    raise
                # Chunks an interrupted attempt left from `first` on (rare: only then is it worth a delete).
                self._chunks(bucket).delete_many({"files_id": object_id, "n": {"$gte": first}})
                for batch in batches:
                    self._chunks(bucket).insert_many(batch, ordered=True)
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

    def replace_chunk(self, bucket: str, object_id: str, n: int, data: bytes) -> None:
        try:
            self._ensure_indexes(bucket)
            self._chunks(bucket).replace_one({"files_id": object_id, "n": n},
                                             {"files_id": object_id, "n": n, "data": bytes(data)}, upsert=True)
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

    def seal(self, bucket: str, object_id: str, length: int, *, filename: str, metadata: Mapping[str, Any]
             ) -> StoredObject:
        doc = {"_id": object_id, "length": Int64(length), "chunkSize": CHUNK_SIZE,
               "uploadDate": datetime.datetime.now(tz=datetime.UTC), "filename": filename,
               "metadata": dict(metadata)}
        try:
            self._files(bucket).replace_one({"_id": object_id}, doc, upsert=True)
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc
        return StoredObject(object_id, filename, length, dict(metadata))

    def _delete_chunks(self, bucket: str, object_id: str) -> None:
        # When the store is down this fails too; the chunks stay as orphans (no files document, so
        # never visible) for the next writer of the id or a sweep to remove.
        with contextlib.suppress(pymongo.errors.PyMongoError):
            self._chunks(bucket).delete_many({"files_id": object_id})

    # --- reading -------------------------------------------------------------------------------------------

    def stat(self, bucket: str, object_id: str) -> StoredObject | None:
        try:
            doc = self._files(bucket).find_one({"_id": object_id})
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc
        if doc is None:
            return None
        return StoredObject(object_id, doc.get("filename", ""), int(doc["length"]), doc.get("metadata") or {})

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            doc = self._files(bucket).find_one({"_id": object_id}, {"length": 1, "chunkSize": 1})
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc
        if doc is None:
            raise KeyError(object_id)
        length, chunk_size = int(doc["length"]), int(doc.get("chunkSize") or CHUNK_SIZE)
        end = length if end is None else min(end, length)
        return self._iter(bucket, object_id, max(0, start), end, length, chunk_size)

    def _iter(self, bucket: str, object_id: str, start: int, end: int, length: int, chunk_size: int
              ) -> Iterator[bytes]:
        if start >= end:
            return
        first, last = start // chunk_size, (end - 1) // chunk_size
        raw = self._chunks(bucket).with_options(
            codec_options=self._db.codec_options.with_options(document_class=RawBSONDocument))
        for window in range(first, last + 1, READ_WINDOW):
            upto = min(window + READ_WINDOW - 1, last)
            try:
                chunks = list(raw.find({"files_id": object_id, "n": {"$gte": window, "$lte": upto}},
                                       {"n": 1, "data": 1}, sort=[("n", pymongo.ASCENDING)],
                                       batch_size=READ_WINDOW))
            except pymongo.errors.PyMongoError as exc:
                raise DependencyUnavailable(UNAVAILABLE) from exc
            if [chunk["n"] for chunk in chunks] != list(range(window, upto + 1)):
                raise gridfs.errors.CorruptGridFile(f"{bucket}/{object_id}: chunks {window}-{upto} incomplete")
            for chunk in chunks:
                n, data = chunk["n"], chunk["data"]
                size = min(chunk_size, length - n * chunk_size)
                if len(data) != size:
                    raise gridfs.errors.CorruptGridFile(f"{bucket}/{object_id}: chunk {n} has the wrong size")
                lo = start - n * chunk_size if n == first else 0
                hi = end - n * chunk_size if n == last else size
                yield data if (lo, hi) == (0, size) else data[lo:hi]
            del chunks

    # --- the rest ------------------------------------------------------------------------------------------

    def delete(self, bucket: str, object_id: str, *, budget_s: float | None = None) -> bool:
        chunks = self._chunks(bucket)
        try:
            self._files(bucket).delete_one({"_id": object_id})
            if budget_s is None:
                chunks.delete_many({"files_id": object_id})
                return True
            deadline = time.monotonic() + budget_s
            last = chunks.find_one({"files_id": object_id}, {"n": 1}, sort=[("n", pymongo.DESCENDING)])
            top = int(last["n"]) if last is not None else -1
            while top >= 0:  # from the end, a bounded delete at a time
                chunks.delete_many({"files_id": object_id, "n": {"$gt": top - DELETE_BATCH, "$lte": top}})
                top -= DELETE_BATCH
                if top >= 0 and time.monotonic() > deadline:
                    return False
            return True
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

    def ping(self) -> None:
        try:
            self._client.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc

    def close(self) -> None:
        self._client.close()


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at the end (a socket-like source may return short reads)."""
    data = source.read(size)
    if not data or len(data) == size:
        return data or b""
    parts = [data]
    got = len(data)
    while got < size:
        more = source.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _is_duplicate(exc: pymongo.errors.PyMongoError) -> bool:
    if isinstance(exc, pymongo.errors.DuplicateKeyError):
        return True
    if isinstance(exc, pymongo.errors.BulkWriteError):
        return any(err.get("code") in _DUPLICATE_KEY for err in exc.details.get("writeErrors", []))
    return False
