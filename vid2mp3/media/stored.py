"""Probe a video already in the object store from a few of its bytes, in bounded time whatever its size.

A resumable upload's last request cannot copy a file of any size out of the store to probe it (API
Gateway gives it 29 s). What ffprobe reads of a file is, for every container we accept, at its
head, at its tail, or in its index: so the probe runs on a sparse copy of the same length that holds
the first HEAD_BYTES, the last TAIL_BYTES and, for MP4/MOV, the `moov` box wherever it is, with zeros
elsewhere (never read back from the disk).

The verdict on a file that fits in the head and the tail is the probe's, whatever it is. On a partial
copy only an acceptance and a refusal of the container itself (decided by the first bytes) are
final; any other refusal leaves the decision to the convert function, which probes the whole file
with the same probe (and fails the job with that probe's error if it refuses it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vid2mp3.errors import AppError
from vid2mp3.media.layout import MP4_DEMUXER, LayoutError, looks_like, top_level_boxes
from vid2mp3.media.probe import MediaInfo
from vid2mp3.objectstore import ObjectStore

__all__ = ["HEAD_BYTES", "MAX_INDEX_BYTES", "TAIL_BYTES", "Verdict", "early_refusal", "probe_stored"]

HEAD_BYTES = 8 * 1024 * 1024
TAIL_BYTES = 8 * 1024 * 1024
MAX_INDEX_BYTES = 64 * 1024 * 1024
# Refusals a partial copy is enough to be sure of: the kind of file, told by its first bytes.
FINAL_ON_PART = frozenset({"container_not_allowed"})

Probe = Callable[[Path], MediaInfo]


@dataclass(frozen=True)
class Verdict:
    media: MediaInfo | None = None  # accepted, with what the probe found
    refusal: AppError | None = None  # refused, with the probe's own error
    whole: bool = True  # the probe saw every byte

    @property
    def undecided(self) -> bool:
        return self.media is None and self.refusal is None


def probe_stored(store: ObjectStore, bucket: str, object_id: str, length: int, *, probe: Probe,
                 work_root: Path | None = None) -> Verdict:
    """Probe the stored object from a sparse copy of it (see the module's description)."""

    def read(start: int, end: int) -> bytes:
        return b"".join(store.read(bucket, object_id, start, end))

    with tempfile.TemporaryDirectory(prefix="vid2mp3-probe-", dir=work_root) as tmp:
        path = Path(tmp) / "video"
        whole = length <= HEAD_BYTES + TAIL_BYTES
        with open(path, "wb") as out:
            if whole:
                out.write(read(0, length))
            else:
                out.truncate(length)  # a hole: takes no space, reads as zeros
                head = read(0, HEAD_BYTES)
                out.write(head)
                out.seek(length - TAIL_BYTES)
                out.write(read(length - TAIL_BYTES, length))
                for offset, data in _index(head, read, length):
                    out.seek(offset)
                    out.write(data)
        try:
            return Verdict(media=probe(path), whole=whole)
        except AppError as refusal:
            if whole or refusal.code in FINAL_ON_PART:
                return Verdict(refusal=refusal, whole=whole)
            return Verdict(whole=False)


def _index(head: bytes, read: Callable[[int, int], bytes], length: int) -> list[tuple[int, bytes]]:
    """The parts of an MP4/MOV outside the head and the tail that its probe needs: its `moov`."""
    if not looks_like(MP4_DEMUXER, head):
        return []

    def read_at(offset: int, n: int) -> bytes:
        return head[offset:offset + n] if offset + n <= len(head) else read(offset, min(length, offset + n))

    try:
        boxes = top_level_boxes(read_at, length)
    except LayoutError:
        return []  # not laid out as boxes we understand: the probe decides from what it has
    return [(box.offset, read(box.offset, box.end)) for box in boxes
            if box.kind == b"moov" and box.size <= MAX_INDEX_BYTES
            and not (box.end <= HEAD_BYTES or box.offset >= length - TAIL_BYTES)]


def early_refusal(first_bytes: bytes, *, probe: Probe, work_root: Path | None = None) -> AppError | None:
    """The refusal the first bytes of an upload are enough for (a playlist, an image, a document ...:
    a container we do not accept), or None. Lets an upload be refused at its first part."""
    with tempfile.TemporaryDirectory(prefix="vid2mp3-probe-", dir=work_root) as tmp:
        path = Path(tmp) / "head"
        path.write_bytes(first_bytes)
        try:
            probe(path)
        except AppError as refusal:
            return refusal if refusal.code in FINAL_ON_PART else None
    return None
