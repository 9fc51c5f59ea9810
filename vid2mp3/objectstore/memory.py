"""In-memory object store for unit tests, with the same all-or-nothing writes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore import StoredObject


@dataclass
class InMemoryObjectStore:
    objects: dict[tuple[str, str], tuple[StoredObject, bytes]] = field(default_factory=dict)
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

    def delete(self, bucket: str, object_id: str) -> None:
        self._check()
        self.objects.pop((bucket, object_id), None)

    def ping(self) -> None:
        self._check()
