"""In-memory object store for unit tests, with the same all-or-nothing writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore import CHUNK_SIZE, StoredObject


@dataclass
class InMemoryObjectStore:
    objects: dict[tuple[str, str], tuple[StoredObject, bytes]] = field(default_factory=dict)
    # Chunks of objects written a piece at a time, by (bucket, id) and chunk number, until sealed.
    chunks: dict[tuple[str, str], dict[int, bytes]] = field(default_factory=dict)
    available: bool = True

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The object store is unavailable.")

    def put(
        self, bucket: str, object_id: str, source: BinaryIO, *, filename: str, metadata: Mapping[str, Any]
    ) -> StoredObject:
        self._check()
        if (bucket, object_id) in self.objects:
            raise FileExistsError(object_id)
        data = source.read()  # an error here stores nothing, like the GridFS adapter
        obj = StoredObject(object_id, filename, len(data), dict(metadata))
        self.objects[(bucket, object_id)] = (obj, data)
        return obj

    def write_chunks(self, bucket: str, object_id: str, first: int, data: bytes) -> None:
        self._check()
        written = self.chunks.setdefault((bucket, object_id), {})
        for n in [n for n in written if n >= first]:
            del written[n]
        for at in range(0, len(data), CHUNK_SIZE):
            written[first + at // CHUNK_SIZE] = bytes(data[at:at + CHUNK_SIZE])

    def replace_chunk(self, bucket: str, object_id: str, n: int, data: bytes) -> None:
        self._check()
        self.chunks.setdefault((bucket, object_id), {})[n] = bytes(data)

    def seal(self, bucket: str, object_id: str, length: int, *, filename: str, metadata: Mapping[str, Any]
             ) -> StoredObject:
        self._check()
        written = self.chunks.get((bucket, object_id), {})
        data = b"".join(written[n] for n in sorted(written))
        if len(data) != length or sorted(written) != list(range(len(written))):
            raise ValueError(f"{bucket}/{object_id}: {len(data)} bytes written in chunks, not {length}")
        obj = StoredObject(object_id, filename, length, dict(metadata))
        self.objects[(bucket, object_id)] = (obj, data)
        return obj

    def stat(self, bucket: str, object_id: str) -> StoredObject | None:
        self._check()
        found = self.objects.get((bucket, object_id))
        return found[0] if found else None

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        self._check()
        if (bucket, object_id) not in self.objects:
            raise KeyError(object_id)
        data = self.objects[(bucket, object_id)][1]
        return iter([data[start:end]])

    def delete(self, bucket: str, object_id: str, *, budget_s: float | None = None) -> bool:
        self._check()
        self.objects.pop((bucket, object_id), None)
        self.chunks.pop((bucket, object_id), None)
        return True

    def ping(self) -> None:
        self._check()
