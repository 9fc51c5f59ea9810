"""When an audio stream ends, from the stream itself, reading a bounded part of the file.

Headers lie or say nothing: a browser's MediaRecorder writes WebM with no duration and no cues; an old
camera's AVI header gives the video's length while the audio runs on; a Matroska header can be shorter
than its shifted audio. The audio's own packets are the truth, and the last of them is near the end of the
file. So the end of the chosen stream is its last packet's time plus that packet's duration, found where
the container allows it without reading the middle (docs/decisions.md, issue 11):

- Matroska/WebM: the head up to the first Cluster (EBML header, Segment, Info, Tracks) joined with the
  tail from a Cluster boundary; ffprobe reads that through a pipe. Cluster timestamps are absolute, so
  the last packets keep their times.
- Fragmented MP4 (MediaRecorder, live encoders): ftyp and moov joined with the tail from a ``moof`` whose
  boxes run exactly to the end of the file; each fragment's ``tfdt`` carries its absolute time.
- FLV: walked back from the end by the tags' back-pointers to the last audio tag.
- AVI: ffprobe seeks to the end through the ``idx1`` index and reads the last packets (from the last
  video key frame, which may lie anywhere: a partial copy is undecided).

When no boundary turns up in the last TAIL_WINDOWS bytes, ffprobe reads every packet of the file (whole
files only): slow for long files, but only clusters or fragments larger than 16 MiB get there.

Other containers (MP4/MOV with an index, MPEG-TS, Ogg, ...) state a duration ffmpeg already derives
from the index or the last timestamps (edit lists honoured); the probe keeps it. This module returns
None when its method does not apply or finds nothing; the probe then falls back (probe.py).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Sequence

from vid2mp3.media.binaries import tool_env
from vid2mp3.media.partial import FileReader, PartialCopyUndecided

__all__ = ["TAIL_WINDOWS", "audio_end", "audio_start", "flv_last_audio", "matroska_head_end", "matroska_tail_start",
           "mp4_tail_start"]

TAIL_WINDOWS = (2 * 1024 * 1024, 16 * 1024 * 1024)  # searched in turn for a cluster / fragment boundary
HEAD_LIMIT = 8 * 1024 * 1024  # the header part of a Matroska or fragmented MP4 file is far smaller
MAX_FLV_TAGS = 100_000
_TIMEOUT_S = 20.0

_EBML, _SEGMENT, _CLUSTER, _TIMESTAMP, _CRC32 = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0xE7, 0xBF
_CLUSTER_ID = b"\x1f\x43\xb6\x75"
_MP4_TAIL_KINDS = frozenset({b"moof", b"mdat", b"mfra", b"free", b"skip", b"sidx", b"styp", b"emsg", b"prft",
                             b"uuid", b"meta"})


# --- EBML (Matroska) -----------------------------------------------------------------------------------------


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length integer at `pos`: (value, length); value None for "unknown" sizes."""
    if pos >= len(data) or data[pos] == 0:
        raise ValueError("bad EBML number")
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if pos + length > len(data):
        raise ValueError("truncated EBML number")
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return None, length
    return value, length


def _element(data: bytes, pos: int) -> tuple[int, int | None, int]:
    """(id, size or None when unknown, offset of the element's data)."""
    ident, n = _vint(data, pos, keep_marker=True)
    size, m = _vint(data, pos + n, keep_marker=False)
    assert ident is not None
    return ident, size, pos + n + m


def matroska_head_end(head: bytes) -> int | None:
    """Where the first Cluster starts: everything before it is what a demuxer needs to read clusters."""
    try:
        ident, size, body = _element(head, 0)
        if ident != _EBML or size is None:
            return None
        ident, _seg_size, pos = _element(head, body + size)
        if ident != _SEGMENT:
            return None
        while pos < len(head):
            ident, size, body = _element(head, pos)
            if ident == _CLUSTER:
                return pos
            if size is None:
                return None
            pos = body + size
    except ValueError:
        return None
    return None


def _cluster_at(data: bytes, pos: int) -> bool:
    """Does a Cluster element start at `pos` (its size readable, its Timestamp first, a CRC-32 allowed)?"""
    try:
        ident, _size, body = _element(data, pos)
        if ident != _CLUSTER:
            return False
        child, child_size, child_body = _element(data, body)
        if child == _CRC32 and child_size == 4:
            child, child_size, child_body = _element(data, child_body + 4)
        return child == _TIMESTAMP and child_size is not None and 1 <= child_size <= 8
    except ValueError:
        return False


def matroska_tail_start(tail: bytes) -> int | None:
    """The first offset in `tail` where a Cluster starts; None when none does."""
    pos = tail.find(_CLUSTER_ID)
    while pos >= 0:
        if _cluster_at(tail, pos):
            return pos
        pos = tail.find(_CLUSTER_ID, pos + 1)
    return None


# --- fragmented MP4 ------------------------------------------------------------------------------------------


def _tiles(data: bytes, pos: int) -> bool:
    """Do the boxes from `pos` fill `data` exactly to its end (each of a kind found after fragments)?"""
    first = True
    while pos < len(data):
        if pos + 8 > len(data):
            return False
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if (first and kind != b"moof") or kind not in _MP4_TAIL_KINDS or size < 8 or pos + size > len(data):
            return False
        first = False
        pos += size
    return pos == len(data)


def mp4_tail_start(tail: bytes) -> int | None:
    """The first offset in `tail` where a ``moof`` starts whose boxes run exactly to the end."""
    pos = tail.find(b"moof")
    while pos >= 0:
        if pos >= 4 and _tiles(tail, pos - 4):
            return pos - 4
        pos = tail.find(b"moof", pos + 1)
    return None


def _mp4_head(head: bytes) -> bytes | None:
    """ftyp and moov (in that order, before the first fragment), when the moov declares fragments."""
    parts: list[bytes] = []
    pos = 0
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos:pos + 4], "big")
        kind = head[pos + 4:pos + 8]
        if size < 8 or pos + size > len(head):
            return None
        if kind in (b"ftyp", b"moov"):
            parts.append(head[pos:pos + size])
        if kind == b"moov":
            return b"".join(parts) if b"mvex" in parts[-1] else None
        if kind in (b"moof", b"mdat"):
            return None
        pos += size
    return None


# --- FLV -----------------------------------------------------------------------------------------------------


def flv_last_audio(read: FileReader, *, sample_rate: int | None, limit: int) -> float | None:
    """The end time (s) of the last audio tag of an FLV file, walked back from the end by the back-pointers,
    reading at most `limit` bytes of tags; None when the walk finds no audio tag or breaks."""
    pos = read.size
    floor = max(13, read.size - limit)
    for _ in range(MAX_FLV_TAGS):
        if pos - 4 < floor:
            return None
        back = int.from_bytes(read.read(pos - 4, pos), "big")
        start = pos - 4 - back
        if back < 11 or start < floor:
            return None
        header = read.read(start, start + 12)
        kind, size = header[0] & 0x1F, int.from_bytes(header[1:4], "big")
        if size + 11 != back or kind not in (8, 9, 18):
            return None
        if kind == 8 and size > 0:
            stamp = (int.from_bytes(header[4:7], "big") | (header[7] << 24)) / 1000.0
            return stamp + _flv_frame_s(header[11], read.read(start + 11, start + 11 + min(size, 2)), size,
                                        sample_rate)
        pos = start
    return None


def _flv_frame_s(flags: int, data: bytes, size: int, sample_rate: int | None) -> float:
    """How long one audio tag plays, by its codec (0 when unknown: within the verification's tolerance)."""
    codec, rate = flags >> 4, sample_rate or (5512, 11025, 22050, 44100)[(flags >> 2) & 3]
    if codec == 10:  # AAC: 1024 samples per raw frame
        return 1024 / rate if len(data) > 1 and data[1] == 1 else 0.0
    if codec in (2, 14):  # MP3
        return (1152 if rate >= 32000 else 576) / rate
    if codec in (0, 3):  # PCM
        bytes_per_sample = (2 if flags & 2 else 1) * (2 if flags & 1 else 1)
        return (size - 1) / bytes_per_sample / rate
    return 0.0


# --- ffprobe over the joined parts, or seeking by the index --------------------------------------------------


def _packet_end(ffprobe: str, args: Sequence[str], stream_index: int, data: bytes | None,
                timeout_s: float, *, first: bool = False) -> float | None:
    """The largest pts + duration among the stream's packets that ffprobe lists for `args` (a packet
    without a duration is taken to last as long as the gap before it: MediaRecorder's MP4 states none).
    `first`: the smallest pts instead."""
    # Not -select_streams: with it, ffprobe seeks in the selected stream, which an AVI's index refuses.
    cmd = [ffprobe, "-hide_banner", "-v", "error", *args[:-1],
           "-show_entries", "packet=stream_index,pts_time,dts_time,duration_time", "-of", "json", args[-1]]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout_s, check=False, env=tool_env(),
                              stdin=None if data is not None else subprocess.DEVNULL)
        packets = json.loads(done.stdout or b"{}").get("packets") or []
    except (subprocess.TimeoutExpired, ValueError, AttributeError):
        return None
    best: float | None = None
    previous: float | None = None
    for p in packets:
        if not isinstance(p, dict) or p.get("stream_index") != stream_index:
            continue
        start = _num(p.get("pts_time"))
        if start is None:
            start = _num(p.get("dts_time"))
        if start is None:
            continue
        if first:
            best = start if best is None else min(best, start)
            continue
        duration = _num(p.get("duration_time"))
        if duration is None:
            duration = start - previous if previous is not None and previous < start else 0.0
        best = start + duration if best is None else max(best, start + duration)
        previous = start
    return best


def _num(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _joined(ffprobe: str, demuxer: str, head: bytes, tail: bytes, stream_index: int,
            timeout_s: float) -> float | None:
    return _packet_end(ffprobe, ["-protocol_whitelist", "pipe", "-f", demuxer, "pipe:0"], stream_index,
                       head + tail, timeout_s)


def _tail_windows(read: FileReader, floor: int) -> list[tuple[int, bytes]]:
    """(offset, bytes) of the tail windows to search, smallest first, never reaching below `floor`."""
    out: list[tuple[int, bytes]] = []
    for window in TAIL_WINDOWS:
        start = max(floor, read.size - window)
        out.append((start, read.read(start, read.size)))
        if start == floor:
            break
    return out


def audio_end(path: str, *, format_name: str, stream_index: int, sample_rate: int | None, ffprobe: str,
              present: Sequence[tuple[int, int]] | None = None, timeout_s: float = _TIMEOUT_S) -> float | None:
    """The time (s, in the file's timeline) at which the stream `stream_index` stops playing, measured
    from its last packets; None when this container is not measured here or nothing was found.

    `present`: the byte ranges a partial copy holds (None: the whole file). Raises PartialCopyUndecided
    when the measurement needs bytes outside them.
    """
    read = FileReader.open(path, present)
    head = read.read(0, min(read.size, HEAD_LIMIT, read.held_from(0)))
    if format_name == "matroska,webm":
        head_end = matroska_head_end(head)
        if head_end is None:
            return None
        for start, tail in _tail_windows(read, head_end):
            at = matroska_tail_start(tail)
            if at is not None:
                end = _joined(ffprobe, "matroska", head[:head_end], tail[at:], stream_index, timeout_s)
                if end is not None:
                    return end
            if start == head_end:
                break
        return _whole_scan(read, ffprobe, "matroska", path, stream_index, timeout_s)
    if format_name.startswith("mov,"):
        mp4_head = _mp4_head(head)
        if mp4_head is None:
            return None  # an MP4 with an index: ffprobe's stream duration comes from it
        for start, tail in _tail_windows(read, len(mp4_head)):
            at = mp4_tail_start(tail)
            if at is not None:
                end = _joined(ffprobe, "mov", mp4_head, tail[at:], stream_index, timeout_s)
                if end is not None:
                    return end
            if start == len(mp4_head):
                break
        return _whole_scan(read, ffprobe, "mov", path, stream_index, timeout_s)
    if format_name == "flv":
        found = flv_last_audio(read, sample_rate=sample_rate, limit=TAIL_WINDOWS[-1])
        if found is None:
            _undecided_if_partial(read)
        return found
    if format_name == "avi":
        # The seek goes through idx1 to the last key frame, which may lie far before the tail.
        _undecided_if_partial(read)
        return _packet_end(ffprobe, ["-protocol_whitelist", "file", "-f", "avi", "-read_intervals",
                                     "99999999%+#1000000", f"file:{path}"], stream_index, None, timeout_s)
    return None


def audio_start(path: str, *, format_name: str, stream_index: int, ffprobe: str,
                present: Sequence[tuple[int, int]], timeout_s: float = _TIMEOUT_S) -> float | None:
    """On a partial copy: the time of the stream's first packet within the copy's head (ffprobe's own
    start time may come from packets it read in the hole). PartialCopyUndecided when the head has none;
    None for an MP4 with an index, whose start its index states (edit lists included)."""
    read = FileReader.open(path, present)
    head = read.read(0, min(read.size, HEAD_LIMIT, read.held_from(0)))
    if format_name.startswith("mov,") and _mp4_head(head) is None:
        return None
    demuxer = format_name.split(",", 1)[0]
    first = _packet_end(ffprobe, ["-protocol_whitelist", "pipe", "-f", demuxer, "pipe:0"], stream_index, head,
                        timeout_s, first=True)
    if first is None:
        raise PartialCopyUndecided("the partial copy's head holds none of the audio track")
    return first


def _whole_scan(read: FileReader, ffprobe: str, demuxer: str, path: str, stream_index: int,
                timeout_s: float) -> float | None:
    """The last resort, when no boundary was found in the tail (clusters or fragments larger than the last
    window): every packet of the file, read by ffprobe. Never on a partial copy."""
    _undecided_if_partial(read)
    return _packet_end(ffprobe, ["-protocol_whitelist", "file", "-f", demuxer, f"file:{path}"], stream_index,
                       None, timeout_s)


def _undecided_if_partial(read: FileReader) -> None:
    if read.present is not None:
        raise PartialCopyUndecided("the end of the audio is not within the partial copy's tail")
