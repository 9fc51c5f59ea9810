"""Probe a video already in the object store from a few of its bytes, in bounded time whatever its size.

A resumable upload's last request cannot copy a file of any size out of the store to probe it (API
Gateway gives it 29 s). What the probe reads of a file is at its head, at its tail, or in its index
(vid2mp3.media.partial): so it runs on a sparse copy of the same length that holds just those ranges
(zeros elsewhere, never read), and is told which ranges it holds. An acceptance is then what the whole
file would get; a refusal is final only when the head decides it (the kind of file); otherwise, or when
the probe would need other bytes (PartialCopyUndecided), the job is made without a probe summary and the
convert function probes the whole file with the same probe (and fails the job with that probe's error
if it refuses it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vid2mp3.errors import AppError
from vid2mp3.media.partial import PartialCopyUndecided, needed_ranges
from vid2mp3.media.probe import MediaInfo
from vid2mp3.media.tracks import TrackChoice
from vid2mp3.objectstore import ObjectStore

__all__ = ["Verdict", "early_refusal", "probe_stored"]

# Refusals the first bytes of an upload are enough for: the kind of file.
FINAL_ON_HEAD = frozenset({"container_not_allowed"})

Probe = Callable[..., MediaInfo]  # vid2mp3.jobs.service.Prober: (path, track, present)


@dataclass(frozen=True)
class Verdict:
    media: MediaInfo | None = None  # accepted, with what the probe found
    refusal: AppError | None = None  # refused, with the probe's own error
    whole: bool = True  # the probe saw every byte

    @property
    def undecided(self) -> bool:
        return self.media is None and self.refusal is None


def probe_stored(store: ObjectStore, bucket: str, object_id: str, length: int, *, probe: Probe,
                 track: TrackChoice | None = None, work_root: Path | None = None) -> Verdict:
    """Probe the stored object from a sparse copy of the parts the probe needs."""

    def read(start: int, end: int) -> bytes:
        return b"".join(store.read(bucket, object_id, start, end))

    ranges = needed_ranges(lambda offset, n: read(offset, min(length, offset + n)), length)
    whole = ranges == [(0, length)]
    with tempfile.TemporaryDirectory(prefix="vid2mp3-probe-", dir=work_root) as tmp:
        path = Path(tmp) / "video"
        with open(path, "wb") as out:
            out.truncate(length)  # holes: no space taken, zeros if read
            for start, end in ranges:
                out.seek(start)
                out.write(read(start, end))
        present: Sequence[tuple[int, int]] | None = None if whole else ranges
        try:
            return Verdict(media=probe(path, track, present), whole=whole)
        except PartialCopyUndecided:
            return Verdict(whole=False)
        except AppError as refusal:
            # On a partial copy only what the head decides is taken as final (ffprobe itself does not
            # know which bytes are there); anything else the whole file's probe confirms or not.
            if whole or refusal.code in FINAL_ON_HEAD:
                return Verdict(refusal=refusal, whole=whole)
            return Verdict(whole=False)


def early_refusal(first_bytes: bytes, *, probe: Probe, work_root: Path | None = None) -> AppError | None:
    """The refusal the first bytes of an upload are enough for (a playlist, an image, a document ...:
    a container we do not accept), or None. Lets an upload be refused at its first part."""
    with tempfile.TemporaryDirectory(prefix="vid2mp3-probe-", dir=work_root) as tmp:
        path = Path(tmp) / "head"
        path.write_bytes(first_bytes)
        try:
            probe(path)
        except AppError as refusal:
            return refusal if refusal.code in FINAL_ON_HEAD else None
        except PartialCopyUndecided:
            return None
    return None
