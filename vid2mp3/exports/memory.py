"""In-memory exporter for unit tests: copies in a dict, links that name them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from vid2mp3.errors import DependencyUnavailable


@dataclass
class InMemoryExporter:
    base_url: str = "https://exports.example.test"
    objects: dict[str, bytes] = field(default_factory=dict)
    available: bool = True
    exports: int = 0  # how many copies were made
    url_ttl_s: int = 300

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The export storage is unavailable.")

    def link(self, key: str, *, size: int, content_disposition: str, content_type: str) -> str | None:
        self._check()
        if len(self.objects.get(key, b"")) != size or key not in self.objects:
            return None
        return (f"{self.base_url}/{key}?response-content-type={quote(content_type)}"
                f"&response-content-disposition={quote(content_disposition)}&expires=300")

    def export(self, key: str, chunks: Iterable[bytes], *, size: int) -> None:
        self._check()
        data = b"".join(chunks)
        if len(data) != size:
            raise ValueError(f"{key}: {len(data)} bytes, not {size}")
        self.objects[key] = data
        self.exports += 1

    def delete(self, key: str) -> None:
        self._check()
        self.objects.pop(key, None)
