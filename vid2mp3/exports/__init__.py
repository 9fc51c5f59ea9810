"""Export copies: an MP3 too large to return through the API, copied to object storage that clients
download from directly, by a short-lived presigned URL (S3 on AWS, the emulator's S3 locally).

The copy is a cache of the MP3 in GridFS: made on the first download that needs it, removed with the
job, and expired by the bucket's lifecycle rule; a download after that makes it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


def export_key(job_id: str) -> str:
    """Where a job's MP3 is exported to in the bucket."""
    return f"mp3/{job_id}.mp3"


class Exporter(Protocol):
    url_ttl_s: int  # how long a link works

    def link(self, key: str, *, size: int, content_disposition: str, content_type: str) -> str | None:
        """A short-lived URL to download the copy under `key` with these response headers, or None when
        there is no copy of `size` bytes there."""

    def export(self, key: str, chunks: Iterable[bytes], *, size: int) -> None:
        """Store a copy of the `size` bytes that `chunks` yields under `key`."""

    def delete(self, key: str) -> None:
        """Remove the copy under `key`; a missing copy is not an error."""
