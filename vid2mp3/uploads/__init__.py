"""Resumable uploads (tus 1.0.0): the domain model and the repository port.

An upload is created with its length, receives its bytes in PATCH requests of at most 4 MiB
(vid2mp3.limits), each written straight into GridFS, and becomes a job when its last byte arrives.
The upload, its GridFS video and the job share one id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Upload:
    id: str  # also the GridFS id of the video, and the id of the job it becomes
    owner_id: str
    owner_email: str
    length: int
    filename: str
    content_type: str
    bitrate: str
    correlation_id: str
    created_at: datetime
    expires_at: datetime
    offset: int = 0
    # The bytes after the last full GridFS chunk (fewer than a chunk): they are stored with the next
    # PATCH's bytes, so that GridFS only ever gets whole chunks until the last one.
    carry: bytes = field(default=b"", repr=False)
    metadata: str = ""  # the Upload-Metadata header as sent
    options: dict[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def video_id(self) -> str:
        return self.id

    @property
    def job_id(self) -> str:
        return self.id


class UploadRepository(Protocol):
    def create(self, upload: Upload) -> None: ...

    def get(self, upload_id: str, owner_id: str) -> Upload | None:
        """The owner's upload (expired or not, finished or not); None when unknown or someone else's."""

    def claim(self, upload_id: str, owner_id: str, offset: int, token: str, lease_s: float) -> Upload | None:
        """Take the upload's write lease for a PATCH at `offset`: only when the upload is the owner's,
        unfinished, not expired, at exactly `offset`, and no other live lease holds it. Returns the
        upload as it is now (carry included), or None (then `get` tells why)."""

    def advance(self, upload_id: str, token: str, offset: int, new_offset: int, carry: bytes) -> bool:
        """Record the bytes a lease holder stored: offset and carry move together, and the lease ends.
        False when the lease was lost (nothing changes)."""

    def finish(self, upload_id: str, token: str) -> bool:
        """The last byte is stored and the job made: the upload is whole (offset = length), finished,
        and the lease ends. False when the lease was lost."""

    def release(self, upload_id: str, token: str) -> None:
        """End a lease without storing anything (the PATCH failed)."""

    def end(self, upload_id: str, owner_id: str) -> Upload | None:
        """Termination: make the owner's unfinished upload expired now, unless a PATCH holds its lease.
        Returns the upload; None when it is unknown, someone else's, finished or being written."""

    def expired(self, limit: int) -> list[Upload]:
        """Uploads past their expiry (finished or not), oldest first."""

    def remove(self, upload_id: str) -> None:
        """Remove an upload row whatever its owner (the sweep, after its chunks are gone)."""

    def expire_owner(self, owner_id: str) -> list[Upload]:
        """Make every upload of the owner expired now (the account goes; the sweep removes them);
        returns them."""
