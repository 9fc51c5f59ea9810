"""Where ffmpeg reads a job's video from: streamed out of GridFS into its standard input, or a spooled copy.

Copying the whole video to a temporary file before ffmpeg starts (the spool) costs the full read of
GridFS up front: 1.5 s of a 5.3 s conversion of a 10-minute 720p file. Streaming overlaps the read with
the conversion. Three modes, decided per job from a few bytes of the stored object:

- ``mp4_audio``: MP4/MOV, wherever the index (moov) is. The moov is read first (a ranged read), and
  ffmpeg is sent a compact MP4 holding only the chosen audio track: the original ftyp, a moov with that
  one trak (chunk offsets rewritten), and the track's chunks cut out of the stored bytes as they stream
  by (vid2mp3.media.layout.audio_only_mp4). ffmpeg gets ~1.7% of a 720p file through the pipe, and its
  sample tables are the original ones. This is what makes a moov-at-end MP4 (ffmpeg's own default
  layout, and the bench's file) streamable at all.
- ``pipe``: the stored bytes as they are, for containers read front to back (Matroska/WebM, MPEG-TS,
  Ogg, WAV, MP3, FLAC, ADTS AAC) when their first bytes carry that container's magic, and for an MP4
  whose moov comes before its media data when the audio-only cut was refused.
- ``spool``: the reference path, as before: a seekable copy in the workspace, probed there. Used for
  everything else (AVI, FLV, MPEG-PS, ASF, ...), whenever anything above is in doubt, and as the
  fallback when a streamed conversion fails (vid2mp3.convert.service).

**Reading ahead.** ffmpeg's libmp3lame thread is the critical path of a re-encode (3.27 s of CPU in a
3.3 s run of the bench's 10-minute file): every time GridFS reads (the server and pymongo, ~1 s of CPU
for 570 MB) preempt it, the conversion gets longer. Read at ffmpeg's pace, the reads interleave with the
encoder for its whole run (+0.55 s); read as fast as the store goes, they are over in the first second
(+0.25 s). So when ffmpeg re-encodes, :class:`ReadAhead` drains the stream into a file in the workspace
(page cache: the process's memory stays flat) and ffmpeg's input follows that file. Its disk use is what
is streamed: ~1.7% of the video for ``mp4_audio``, the whole video (as the spool used) for ``pipe``.
When ffmpeg copies (-c:a copy), the store is the bottleneck: the stream goes into the pipe through
:class:`Prefetch`, a queue of PREFETCH_CHUNKS (4 MB) filled by a thread, so the server prepares the next
read while the last one is written (1.3 s -> 0.9 s for the bench's 578 MB MKV); a file only costs there.

**The input's audio duration**, which the output is verified against, must describe the whole file.
ffprobe through a pipe cannot give it (it reports a duration even for an unreadable moov-at-end MP4),
and a probe of the first megabytes is exact for some containers only. So a streamed conversion uses the
probe the upload function ran on the same bytes, seekable and whole, before storing them: it is kept
with the job (``Job.extra["media"]``, probe.MediaInfo.summary) and now records the audio stream's own
duration. Same bytes (a video id is never reused, and the stored length must equal the job's size),
same ffprobe, same rules: the verification is exactly as strict as with a convert-time probe. A job
without a complete summary (recorded before this field existed) is spooled and probed here.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from vid2mp3.jobs import Job
from vid2mp3.media.layout import (
    MP4_DEMUXER,
    PIPEABLE_DEMUXERS,
    AudioExtract,
    Box,
    LayoutError,
    audio_only_mp4,
    looks_like,
    top_level_boxes,
)
from vid2mp3.media.probe import MediaInfo, summary_info
from vid2mp3.objectstore import VIDEOS_BUCKET, ObjectStore

HEAD_BYTES = 64 * 1024  # read once; holds the magic and, almost always, the first box headers
MAX_MOOV_BYTES = 64 * 1024 * 1024  # a 3-hour video's index is ~10 MB; larger ones are spooled
MAX_FTYP_BYTES = 4096
MERGE_GAP_BYTES = 512 * 1024  # audio chunks closer than this are read in one range (skipping costs a query)
READ_AHEAD_BLOCK = 256 * 1024  # what ffmpeg is handed at a time from the read-ahead file
READ_AHEAD_JOIN_S = 30.0
PREFETCH_CHUNKS = 16  # queued pieces (GridFS chunks: 4 MB) between the store and the pipe


class InputMode(StrEnum):
    MP4_AUDIO = "mp4_audio"
    PIPE = "pipe"
    SPOOL = "spool"


@dataclass(frozen=True)
class StreamedInput:
    info: MediaInfo  # from the upload's probe of the same bytes
    size: int  # bytes ffmpeg is sent
    open: Callable[[], Iterator[bytes]]  # a fresh read of the store, chunk by chunk


@dataclass(frozen=True)
class InputChoice:
    mode: InputMode
    reason: str
    stream: StreamedInput | None = None  # None: spool


def choose_input(store: ObjectStore, job: Job, *, max_duration_s: float) -> InputChoice:
    """How to feed ffmpeg this job's video. Raises only what the store raises (DependencyUnavailable)."""
    summary = job.extra.get("media") if isinstance(job.extra, Mapping) else None
    info = summary_info(summary, max_duration_s=max_duration_s)
    if info is None:
        return InputChoice(InputMode.SPOOL, "no complete probe summary from the upload")
    stored = store.stat(VIDEOS_BUCKET, job.video_id)
    if stored is None:
        return InputChoice(InputMode.SPOOL, "the video is not stored")  # the spool reports it
    size = stored.length
    if size != job.size or size == 0:
        return InputChoice(InputMode.SPOOL, f"the stored size {size} is not the uploaded {job.size}")
    reader = _Reader(store, job.video_id, size)
    fmt = info.format_name
    if not looks_like(fmt, reader.head):
        return InputChoice(InputMode.SPOOL, f"the first bytes are not {fmt}")
    if fmt in PIPEABLE_DEMUXERS:
        return InputChoice(InputMode.PIPE, f"{fmt} is read front to back",
                           StreamedInput(info, size, lambda: store.read(VIDEOS_BUCKET, job.video_id)))
    if fmt != MP4_DEMUXER:
        return InputChoice(InputMode.SPOOL, f"{fmt} is not streamed")
    try:
        boxes = top_level_boxes(reader.read_at, size)
    except LayoutError as exc:
        return InputChoice(InputMode.SPOOL, f"MP4 boxes: {exc}")
    moovs = [b for b in boxes if b.kind == b"moov"]
    mdats = [b for b in boxes if b.kind == b"mdat"]
    if len(moovs) != 1 or not mdats:
        return InputChoice(InputMode.SPOOL, f"{len(moovs)} moov and {len(mdats)} mdat boxes")
    moov = moovs[0]
    moov_first = moov.offset < mdats[0].offset
    try:
        extract = _audio_extract(reader, boxes, moov, mdats, info, summary)
    except LayoutError as exc:
        if moov_first:
            return InputChoice(InputMode.PIPE, f"moov before mdat (audio-only cut refused: {exc})",
                               StreamedInput(info, size, lambda: store.read(VIDEOS_BUCKET, job.video_id)))
        return InputChoice(InputMode.SPOOL, f"moov after mdat and the audio-only cut was refused: {exc}")
    where = "before" if moov_first else "after"
    only = replace(info, audio=(replace(info.audio_stream, position=0),), chosen=0)  # the cut holds one track
    return InputChoice(InputMode.MP4_AUDIO, f"audio track {info.audio_stream.position} by the index "
                       f"(moov {where} mdat)",
                       StreamedInput(only, extract.size, lambda: audio_chunks(store, job.video_id, extract)))


class _Reader:
    """Ranged reads of the stored video, the first HEAD_BYTES read once."""

    def __init__(self, store: ObjectStore, video_id: str, size: int) -> None:
        self.store, self.video_id, self.size = store, video_id, size
        self.head = self.read(0, min(HEAD_BYTES, size))

    def read(self, start: int, end: int) -> bytes:
        return b"".join(self.store.read(VIDEOS_BUCKET, self.video_id, start, end))

    def read_at(self, offset: int, n: int) -> bytes:
        if offset + n <= len(self.head):
            return self.head[offset:offset + n]
        return self.read(offset, min(offset + n, self.size))


def _audio_extract(reader: _Reader, boxes: Sequence[Box], moov: Box, mdats: Sequence[Box], info: MediaInfo,
                   summary: Any) -> AudioExtract:
    if moov.size > MAX_MOOV_BYTES:
        raise LayoutError(f"a {moov.size}-byte moov is too large")
    ftyp_box = next((b for b in boxes if b.kind == b"ftyp"), None)
    ftyp = b""
    if ftyp_box is not None:
        if ftyp_box.size > MAX_FTYP_BYTES or ftyp_box.header != 8:
            raise LayoutError("unusual ftyp")
        ftyp = reader.read_at(ftyp_box.offset, ftyp_box.size)
    return audio_only_mp4(ftyp, reader.read(moov.offset, moov.end),
                          media=[(b.body, b.end) for b in mdats],
                          audio_codec=info.audio_stream.codec, audio_streams=int(summary["audio_streams"]),
                          position=info.audio_stream.position)


def audio_chunks(store: ObjectStore, video_id: str, extract: AudioExtract) -> Iterator[bytes]:
    """The compact MP4 of `extract`: its head, then the track's chunks cut out of the stored video,
    read in ranges (neighbouring chunks less than MERGE_GAP_BYTES apart share one), one piece per
    stored chunk. Raises LayoutError when the store has fewer bytes than the index promised."""
    yield extract.head
    offsets, sizes = extract.offsets, extract.sizes
    count = len(offsets)
    first = 0
    while first < count:
        stop = first + 1  # the run: chunks [first, stop)
        while stop < count and offsets[stop] - (offsets[stop - 1] + sizes[stop - 1]) <= MERGE_GAP_BYTES:
            stop += 1
        run_start, run_end = offsets[first], offsets[stop - 1] + sizes[stop - 1]
        i, pos = first, run_start
        for piece in store.read(VIDEOS_BUCKET, video_id, run_start, run_end):
            piece_end = pos + len(piece)
            view = memoryview(piece)
            parts: list[memoryview] = []
            while i < stop and offsets[i] < piece_end:
                chunk_end = offsets[i] + sizes[i]
                parts.append(view[max(offsets[i], pos) - pos:min(chunk_end, piece_end) - pos])
                if chunk_end > piece_end:
                    break  # continues in the next piece
                i += 1
            pos = piece_end
            if parts:
                yield b"".join(parts)
        if i != stop or pos != run_end:
            raise LayoutError("the stored video is shorter than its index says")
        first = stop


class ReadAhead:
    """Drains `source` into the file `path` on a thread, as fast as it comes; `chunks()` follows the file.

    Use as a context manager around the conversion: leaving it stops the reading (ffmpeg may have ended
    early), waits for the thread and removes the file. An error of the source (the store unavailable, a
    layout surprise) is raised by `chunks()` once what came before it was handed on.
    """

    def __init__(self, source: Iterator[bytes], path: Path) -> None:
        self._source = source
        self._path = path
        self._written = 0
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._drain, name="read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead:
        self._path.touch()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._changed:
            self._stop = True
        self._thread.join(READ_AHEAD_JOIN_S)  # ends within one read of the store
        self._path.unlink(missing_ok=True)

    def _drain(self) -> None:
        try:
            with open(self._path, "wb", buffering=0) as out:
                for chunk in self._source:
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) or 0:]
                    with self._changed:
                        self._written += len(chunk)
                        self._changed.notify_all()
                        if self._stop:
                            break
        except BaseException as exc:
            self._error = exc
        finally:
            _close_quietly(self._source)
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def chunks(self) -> Iterator[bytes]:
        """What was read, as it arrives, in blocks of up to READ_AHEAD_BLOCK bytes."""
        sent = 0
        with open(self._path, "rb", buffering=0) as f:
            while True:
                with self._changed:
                    while self._written == sent and not self._done:
                        self._changed.wait()
                    available, done = self._written, self._done
                if available > sent:
                    block = f.read(min(READ_AHEAD_BLOCK, available - sent))
                    if not block:
                        raise OSError(f"{self._path} is shorter than what was written to it")
                    sent += len(block)
                    yield block
                elif done:
                    if self._error is not None:
                        raise self._error
                    return


class Prefetch:
    """Pulls `source` on a thread into a queue of at most `depth` pieces; `chunks()` takes them out.

    Use as a context manager around the conversion: leaving it stops the pulling and waits for the
    thread. An error of the source is raised by `chunks()` after the pieces that came before it.
    """

    def __init__(self, source: Iterator[bytes], depth: int = PREFETCH_CHUNKS) -> None:
        self._source = source
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)  # None: the end
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pull, name="prefetch", daemon=True)

    def __enter__(self) -> Prefetch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a full queue
                self._queue.get_nowait()
        self._thread.join(READ_AHEAD_JOIN_S)

    def _put(self, item: bytes | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pull(self) -> None:
        try:
            for chunk in self._source:
                if not self._put(chunk):
                    break
        except BaseException as exc:
            self._error = exc
        finally:
            _close_quietly(self._source)
            self._put(None)

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is None:
                if self._error is not None:
                    raise self._error
                return
            yield item


def _close_quietly(source: object) -> None:
    """Close a chunk iterator (a GridFS read) if it can be; a failure to close changes nothing."""
    close = getattr(source, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
