"""The object-store port: large binary objects (videos, MP3s) in named buckets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

VIDEOS_BUCKET = "videos"
MP3S_BUCKET = "mp3s"
# GridFS's default chunk size. Objects written a piece at a time (resumable uploads) are written in
# whole chunks of this size; only the last chunk of an object may be shorter.
CHUNK_SIZE = 255 * 1024


@dataclass(frozen=True)
class StoredObject:
    id: str
    filename: str
    length: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


class ObjectStore(Protocol):
    def put(
        self, bucket: str, object_id: str, source: BinaryIO, *, filename: str, metadata: Mapping[str, Any]
    ) -> StoredObject:
        """Store `source` under `object_id`; on any error nothing is left behind.

        Raises FileExistsError when `object_id` is already stored (which makes writes idempotent).
        """

    def write_chunks(self, bucket: str, object_id: str, first: int, data: bytes) -> None:
        """Store `data` as the chunks numbered `first`, `first` + 1, ... of an object being written a piece
        at a time: every chunk CHUNK_SIZE bytes but the object's last. Chunks from `first` on that an
        earlier, unfinished attempt left are replaced. The object is invisible until `seal`."""

    def replace_chunk(self, bucket: str, object_id: str, n: int, data: bytes) -> None:
        """Store `data` as chunk `n` of an object being written, whether or not it was written before;
        no other chunk is touched."""

    def seal(self, bucket: str, object_id: str, length: int, *, filename: str, metadata: Mapping[str, Any]
             ) -> StoredObject:
        """Make the object whose `length` bytes were written with `write_chunks` visible, whole.
        Sealing an object again replaces its description (a retried finish)."""

    def stat(self, bucket: str, object_id: str) -> StoredObject | None: ...

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end) in chunks; raises KeyError when the object is missing."""

    def delete(self, bucket: str, object_id: str, *, budget_s: float | None = None) -> bool:
        """Remove the object and all its chunks; a missing object is not an error. The object is invisible
        at once; with `budget_s`, chunk removal stops after about that long and False says some are left
        (call again to finish: a large object on a slow server takes longer than a request may)."""

    def ping(self) -> None: ...
