"""Reading a media file by ranges, on a whole file or on a partial copy of one.

The probe only ever needs a file's head, its tail and its index (an MP4's ``moov``, an AVI's ``idx1``).
A caller that holds the file elsewhere (a stored upload in GridFS) can copy just those parts into a
sparse file of the same size, say which byte ranges it holds (``present``), and probe that: whatever
the probe would need from elsewhere raises :class:`PartialCopyUndecided`, never a refusal, so the caller
knows to probe a whole copy instead. :func:`needed_ranges` says which ranges to copy.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "PARTIAL_HEAD_BYTES",
    "PARTIAL_TAIL_BYTES",
    "FileReader",
    "PartialCopyUndecided",
    "index_box",
    "needed_ranges",
]

PARTIAL_HEAD_BYTES = 8 * 1024 * 1024  # what ffprobe reads from the start (its probesize is 5 MB) and more
PARTIAL_TAIL_BYTES = 16 * 1024 * 1024  # the last clusters / fragments / tags, an AVI's idx1 of ~3 hours
MAX_TOP_LEVEL = 4096  # boxes or chunks walked before giving up on a layout


class PartialCopyUndecided(Exception):
    """The probe needs bytes a partial copy does not hold: probe the whole file to decide."""


Ranges = Sequence[tuple[int, int]]


@dataclass
class FileReader:
    """Ranged reads of a local file; with `present`, only inside those (start, end) byte ranges."""

    path: str | os.PathLike[str]
    size: int
    present: Ranges | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], present: Ranges | None = None) -> FileReader:
        return cls(path, os.path.getsize(path), None if present is None else sorted(present))

    def holds(self, start: int, end: int) -> bool:
        if self.present is None:
            return True
        return any(s <= start and end <= e for s, e in self.present)

    def held_from(self, start: int) -> int:
        """Where the bytes held from `start` on end (`start` itself when it is not held)."""
        if self.present is None:
            return self.size
        return max((e for s, e in self.present if s <= start < e), default=start)

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) (clipped to the file); PartialCopyUndecided when the copy lacks them."""
        start, end = max(0, start), min(end, self.size)
        if end <= start:
            return b""
        if not self.holds(start, end):
            raise PartialCopyUndecided(f"bytes {start}-{end} are not in the partial copy")
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


def _walk(read_at: Callable[[int, int], bytes], start: int, end: int, *, little: bool,
          stop: Callable[[bytes], bool]) -> list[tuple[bytes, int, int]]:
    """(kind, offset, size) of the boxes (MP4, big-endian sizes) or chunks (RIFF, little-endian, padded to
    even sizes) that tile [start, end); stops after a kind for which `stop` is true. Raises ValueError for
    a layout that does not tile."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(found) < MAX_TOP_LEVEL:
        raw = read_at(pos, 16)
        if len(raw) < 8:
            raise ValueError(f"short header at {pos}")
        if little:
            kind, size = raw[:4], struct.unpack_from("<I", raw, 4)[0] + 8
            size += size & 1
        else:
            size, kind = struct.unpack_from(">I4s", raw)
            if size == 1 and len(raw) >= 16:
                size = struct.unpack_from(">Q", raw, 8)[0]
            elif size == 0:
                size = end - pos
        if size < 8 or pos + size > end + (1 if little else 0):
            raise ValueError(f"{kind!r} at {pos} runs past its end")
        found.append((kind, pos, size))
        if stop(kind):
            break
        pos += size
    return found


def index_box(read_at: Callable[[int, int], bytes], size: int, head: bytes) -> tuple[int, int] | None:
    """Where a file's index lies: an MP4's moov or an AVI's idx1 (start, end), from its first bytes `head`
    and the headers of its top-level boxes/chunks. None for other files or when there is none."""
    try:
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
            boxes = _walk(read_at, 0, size, little=False, stop=lambda kind: kind in (b"moov", b"moof"))
            return next(((off, off + n) for kind, off, n in boxes if kind == b"moov"), None)
        if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            riff_end = min(size, 8 + struct.unpack_from("<I", head, 4)[0])
            chunks = _walk(read_at, 12, riff_end, little=True, stop=lambda kind: kind == b"idx1")
            return next(((off, off + n) for kind, off, n in chunks if kind == b"idx1"), None)
    except (ValueError, struct.error):
        return None
    return None


def needed_ranges(read_at: Callable[[int, int], bytes], size: int) -> list[tuple[int, int]]:
    """The byte ranges a partial copy of a file of `size` bytes must hold for the probe to decide:
    the first PARTIAL_HEAD_BYTES, the last PARTIAL_TAIL_BYTES and the index wherever it is.

    `read_at(offset, n)` reads up to n bytes of the original (it is asked for box headers only, beyond
    the head). A file no larger than head and tail together needs all of it.
    """
    if size <= PARTIAL_HEAD_BYTES + PARTIAL_TAIL_BYTES:
        return [(0, size)]
    ranges = [(0, PARTIAL_HEAD_BYTES), (size - PARTIAL_TAIL_BYTES, size)]
    index = index_box(read_at, size, read_at(0, 64))
    if index is not None:
        ranges.append(index)
    return _merge(ranges)


def _merge(ranges: Ranges) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
