"""The object-store port: large binary objects (videos, MP3s) in named buckets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

VIDEOS_BUCKET = "videos"
MP3S_BUCKET = "mp3s"


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

    def stat(self, bucket: str, object_id: str) -> StoredObject | None: ...

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end) in chunks; raises KeyError when the object is missing."""

    def delete(self, bucket: str, object_id: str) -> None:
        """Remove the object and all its chunks; a missing object is not an error."""

    def ping(self) -> None: ...
