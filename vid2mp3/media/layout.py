"""How a stored media file is laid out, read from a few of its bytes: can it be streamed into ffmpeg?

ffmpeg reads most containers front to back, so they can come through a pipe: Matroska/WebM, MPEG-TS,
Ogg, WAV, MP3, FLAC, ADTS AAC (PIPEABLE_DEMUXERS). MP4/MOV cannot in general: the index (the ``moov``
box) says where every sample is, and ffmpeg's default muxer writes it *after* the media data
(``mdat``), where a pipe never gets back to (design brief, "Media facts").

For MP4/MOV this module does better than "pipe when the moov is first": given the moov (read from
wherever it is), :func:`audio_only_mp4` builds a small MP4 holding only the chosen audio track: the
original ``ftyp``, a ``moov`` with the ``mvhd`` and that one ``trak`` (unchanged but for its chunk
offsets), and an ``mdat`` with that track's chunks, in order. ffmpeg then reads ~1.7% of a 720p file's
bytes through the pipe, whatever the moov's position, and the sample tables it decodes by are the
original ones. Only the chunk offsets (``stco``/``co64``) are rewritten, like qt-faststart does.

Everything here is pure (bytes in, bytes out). Whatever is not exactly understood raises
:class:`LayoutError`; the caller then uses a safer input (the whole file, or a seekable copy).
"""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MP4_DEMUXER",
    "PIPEABLE_DEMUXERS",
    "AudioExtract",
    "Box",
    "LayoutError",
    "audio_only_mp4",
    "iter_boxes",
    "looks_like",
    "top_level_boxes",
]

MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
# Demuxers that read their input front to back: a pipe is as good as a file for them.
PIPEABLE_DEMUXERS: frozenset[str] = frozenset({"matroska,webm", "mpegts", "ogg", "wav", "mp3", "flac", "aac"})

MAX_TOP_LEVEL_BOXES = 1024
_U32 = 0xFFFFFFFF


class LayoutError(ValueError):
    """The bytes are not laid out the way this module handles (or not what they claim to be)."""


# --- magic numbers ------------------------------------------------------------------------------------------


def _skip_id3(head: bytes) -> bytes:
    """The bytes after a leading ID3v2 tag (MP3, FLAC and ADTS files may start with one)."""
    if len(head) >= 10 and head[:3] == b"ID3" and all(b < 0x80 for b in head[6:10]):
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        footer = 10 if head[5] & 0x10 else 0
        return head[10 + size + footer:]
    return head


def looks_like(format_name: str, head: bytes) -> bool:
    """Do the first bytes of a file carry the magic of `format_name` (an ffprobe demuxer name)?

    A cheap consistency check between the probe's verdict and the bytes about to be streamed.
    ``False`` for anything it does not know, and for an ID3 tag too long to see past in `head`.
    """
    if format_name == "matroska,webm":
        return head[:4] == b"\x1a\x45\xdf\xa3"
    if format_name == "ogg":
        return head[:4] == b"OggS"
    if format_name == "wav":
        return head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"
    if format_name == "mpegts":  # 188-byte packets (or 192 with a timecode: M2TS), each starting 0x47
        return any(len(head) > 3 * size + off and all(head[off + i * size] == 0x47 for i in range(4))
                   for size, off in ((188, 0), (192, 4)))
    if format_name == "flac":
        return _skip_id3(head)[:4] == b"fLaC"
    if format_name == "mp3":
        body = _skip_id3(head)
        return len(body) >= 2 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0 and body[1] & 0x06 != 0
    if format_name == "aac":  # ADTS: 12-bit sync, layer 00
        body = _skip_id3(head)
        return len(body) >= 2 and body[0] == 0xFF and body[1] & 0xF6 == 0xF0
    if format_name == MP4_DEMUXER:
        return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
    return False


# --- ISO BMFF boxes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    kind: bytes  # the four-character type
    offset: int  # where its header starts
    size: int  # header included
    header: int  # 8, or 16 with a 64-bit size

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def body(self) -> int:
        return self.offset + self.header


def _box_at(data: bytes | memoryview, pos: int, limit: int) -> Box:
    if pos + 8 > limit:
        raise LayoutError(f"truncated box header at {pos}")
    size, kind = struct.unpack_from(">I4s", data, pos)
    header = 8
    if size == 1:
        if pos + 16 > limit:
            raise LayoutError(f"truncated 64-bit box header at {pos}")
        (size,) = struct.unpack_from(">Q", data, pos + 8)
        header = 16
    elif size == 0:  # "to the end of the enclosing space"
        size = limit - pos
    if size < header or pos + size > limit:
        raise LayoutError(f"box {kind!r} at {pos} has an impossible size {size}")
    return Box(kind, pos, size, header)


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes that exactly fill data[start:end] (offsets relative to `data`)."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        box = _box_at(data, pos, end)
        yield box
        pos = box.end


def top_level_boxes(read_at: Callable[[int, int], bytes], total: int) -> list[Box]:
    """The top-level boxes of a file of `total` bytes, reading only their headers.

    `read_at(offset, n)` returns up to n bytes at offset. The boxes must tile the file exactly.
    """
    boxes: list[Box] = []
    pos = 0
    while pos < total:
        if len(boxes) >= MAX_TOP_LEVEL_BOXES:
            raise LayoutError("too many top-level boxes")
        raw = read_at(pos, min(16, total - pos))
        if len(raw) < 8:
            raise LayoutError(f"truncated box header at {pos}")
        size, kind = struct.unpack_from(">I4s", raw)
        header = 8
        if size == 1:
            if len(raw) < 16:
                raise LayoutError(f"truncated 64-bit box header at {pos}")
            (size,) = struct.unpack_from(">Q", raw, 8)
            header = 16
        elif size == 0:  # the last box, to the end of the file
            size = total - pos
        if size < header or pos + size > total:
            raise LayoutError(f"box {kind!r} at {pos} runs past the end of the file")
        boxes.append(Box(kind, pos, size, header))
        pos += size
    return boxes


# --- the audio track of an MP4, by its index -----------------------------------------------------------------

# Sample-entry four-character codes of audio, and what ffprobe may call the codec of each (a consistency
# check against the upload's probe). "mp4a" carries several codecs, told apart by its esds.
_AUDIO_ENTRIES: Mapping[bytes, frozenset[str] | None] = {
    b"mp4a": frozenset({"aac", "aac_latm", "mp3", "mp2", "mp1", "ac3", "eac3", "vorbis", "opus", "alac", "dts",
                        "flac"}),
    b".mp3": frozenset({"mp3"}), b"ms\x00\x55": frozenset({"mp3"}),
    b"ac-3": frozenset({"ac3"}), b"ec-3": frozenset({"eac3"}),
    b"Opus": frozenset({"opus"}), b"fLaC": frozenset({"flac"}), b"alac": frozenset({"alac"}),
    b"samr": frozenset({"amr_nb"}), b"sawb": frozenset({"amr_wb"}),
    b"dtsc": frozenset({"dts"}), b"dtse": frozenset({"dts"}), b"dtsh": frozenset({"dts"}), b"dtsl": frozenset({"dts"}),
    b"ulaw": frozenset({"pcm_mulaw"}), b"alaw": frozenset({"pcm_alaw"}),
    # PCM: ffprobe names these pcm_s16le, pcm_s24be, pcm_f32le, ... (None: any "pcm_" name)
    b"sowt": None, b"twos": None, b"lpcm": None, b"in24": None, b"in32": None, b"fl32": None, b"fl64": None,
    b"raw ": None, b"ipcm": None, b"fpcm": None, b"NONE": None,
}
# Boxes whose presence means sample data lives where stco/co64 do not say (fragments, items, sample
# auxiliary information), or that the rewrite would have to patch too.
_REFUSED_IN_MOOV = frozenset({b"mvex", b"iloc", b"saio"})
_MOOV_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex"})


@dataclass(frozen=True)
class AudioExtract:
    """A compact MP4 of one audio track: `head` (ftyp, moov, mdat header), then the source's byte
    ranges (`offsets[i]`, `sizes[i]`) in order. `size` is the whole compact file's length."""

    head: bytes
    offsets: array[int]
    sizes: array[int]
    codec_tag: bytes

    @property
    def payload_size(self) -> int:
        return sum(self.sizes)

    @property
    def size(self) -> int:
        return len(self.head) + self.payload_size


def _children(moov: bytes, box: Box) -> dict[bytes, list[Box]]:
    found: dict[bytes, list[Box]] = {}
    for child in iter_boxes(moov, box.body, box.end):
        found.setdefault(child.kind, []).append(child)
    return found


def _one(children: Mapping[bytes, list[Box]], kind: bytes, where: str) -> Box:
    boxes = children.get(kind, [])
    if len(boxes) != 1:
        raise LayoutError(f"{where}: expected one {kind!r}, found {len(boxes)}")
    return boxes[0]


def _walk(moov: bytes, box: Box) -> Iterator[Box]:
    for child in iter_boxes(moov, box.body, box.end):
        yield child
        if child.kind in _MOOV_CONTAINERS:
            yield from _walk(moov, child)


def _big_endian(typecode: str, data: bytes, start: int, count: int) -> array[int]:
    values = array(typecode)
    values.frombytes(data[start:start + values.itemsize * count])
    if len(values) != count:
        raise LayoutError("table shorter than its count")
    if sys.byteorder == "little":
        values.byteswap()
    return values


def _u32s(data: bytes, start: int, count: int) -> array[int]:
    return _big_endian("I", data, start, count)


def _u64s(data: bytes, start: int, count: int) -> array[int]:
    return _big_endian("Q", data, start, count)


@dataclass(frozen=True)
class _Track:
    trak: Box
    handler: bytes
    entry: bytes  # the first sample entry's four-character code (b"" when none)
    stbl: Box | None


def _track(moov: bytes, trak: Box) -> _Track:
    kids = _children(moov, trak)
    mdia = _one(kids, b"mdia", "trak")
    mdia_kids = _children(moov, mdia)
    hdlr = _one(mdia_kids, b"hdlr", "mdia")
    if hdlr.size < hdlr.header + 12:
        raise LayoutError("short hdlr")
    handler = moov[hdlr.body + 8:hdlr.body + 12]
    stbl: Box | None = None
    entry = b""
    minf = mdia_kids.get(b"minf", [])
    if len(minf) == 1:
        stbls = _children(moov, minf[0]).get(b"stbl", [])
        if len(stbls) == 1:
            stbl = stbls[0]
            stsd = _children(moov, stbl).get(b"stsd", [])
            if len(stsd) == 1 and stsd[0].size >= stsd[0].header + 16:
                entry = moov[stsd[0].body + 12:stsd[0].body + 16]
    return _Track(trak, handler, entry, stbl)


def _is_audio(track: _Track) -> bool:
    """ffmpeg's view (libavformat/mov.c): a 'soun' handler, or (not video) an audio sample entry."""
    if track.handler == b"soun":
        return True
    if track.handler == b"m1a ":
        raise LayoutError("MPEG-1 audio handler: not handled here")
    return track.handler != b"vide" and track.entry in _AUDIO_ENTRIES


def _chunk_sizes(moov: bytes, stbl: Box, chunks: int) -> array[int]:
    """The byte size of each chunk of a track, from its sample-to-chunk and sample-size tables."""
    kids = _children(moov, stbl)
    if b"stz2" in kids:
        raise LayoutError("compact sample sizes (stz2) not handled")
    stsz = _one(kids, b"stsz", "stbl")
    fixed, count = struct.unpack_from(">II", moov, stsz.body + 4)
    stsc = _one(kids, b"stsc", "stbl")
    (entries,) = struct.unpack_from(">I", moov, stsc.body + 4)
    table = _u32s(moov, stsc.body + 8, 3 * entries)
    if stsc.body + 8 + 12 * entries > stsc.end or entries == 0 or table[0] != 1:
        raise LayoutError("bad sample-to-chunk table")
    per_chunk = array("I")
    for i in range(entries):
        first, samples = table[3 * i], table[3 * i + 1]
        last = table[3 * (i + 1)] if i + 1 < entries else chunks + 1
        if samples == 0 or not first < last <= chunks + 1:
            raise LayoutError("bad sample-to-chunk entry")
        per_chunk.extend(itertools.repeat(samples, last - first))
    if len(per_chunk) != chunks or sum(per_chunk) != count:
        raise LayoutError("sample-to-chunk table does not match the chunk and sample counts")
    if fixed:
        return array("Q", (fixed * n for n in per_chunk))
    if stsz.body + 12 + 4 * count > stsz.end:
        raise LayoutError("sample-size table runs past its box")
    ends = array("Q", itertools.accumulate(_u32s(moov, stsz.body + 12, count), initial=0))
    bounds = itertools.accumulate(per_chunk, initial=0)
    sizes = array("Q")
    start = next(bounds)
    for stop in bounds:
        sizes.append(ends[stop] - ends[start])
        start = stop
    return sizes


def audio_only_mp4(
    ftyp: bytes,
    moov: bytes,
    *,
    media: Sequence[tuple[int, int]],
    audio_codec: str,
    audio_streams: int,
    position: int = 0,
) -> AudioExtract:
    """The compact MP4 holding only the audio track at `position` (among the audio tracks, from 0) of the
    file whose `ftyp` and `moov` boxes are given (each whole, header included; `ftyp` may be empty: old
    QuickTime files have none).

    `media`: the (start, end) byte ranges of the file's mdat payloads; every chunk of the track must
    lie inside one. `audio_codec`, `audio_streams`: what the upload's probe (ffprobe on the whole
    file) found: the chosen audio stream's codec name and the number of audio streams. The track
    picked here must agree with both, or this refuses.
    """
    try:
        return _audio_only_mp4(ftyp, moov, media=media, audio_codec=audio_codec, audio_streams=audio_streams,
                               position=position)
    except (struct.error, IndexError, OverflowError) as exc:  # a table or box shorter than it says
        raise LayoutError(f"malformed moov: {exc}") from None


def _audio_only_mp4(
    ftyp: bytes,
    moov: bytes,
    *,
    media: Sequence[tuple[int, int]],
    audio_codec: str,
    audio_streams: int,
    position: int,
) -> AudioExtract:
    moov_box = _box_at(moov, 0, len(moov))
    if moov_box.kind != b"moov" or moov_box.size != len(moov):
        raise LayoutError("not a moov box")
    if ftyp and (_box_at(ftyp, 0, len(ftyp)).kind != b"ftyp" or _box_at(ftyp, 0, len(ftyp)).size != len(ftyp)):
        raise LayoutError("not an ftyp box")
    refused = {box.kind for box in _walk(moov, moov_box)} & _REFUSED_IN_MOOV
    if refused:
        raise LayoutError(f"the moov holds {sorted(refused)}: not handled")
    kids = _children(moov, moov_box)
    mvhd = _one(kids, b"mvhd", "moov")
    tracks = [_track(moov, trak) for trak in kids.get(b"trak", [])]
    audio = [t for t in tracks if _is_audio(t)]
    if not audio or len(audio) != audio_streams or not 0 <= position < len(audio):
        raise LayoutError(f"{len(audio)} audio tracks in the moov, the probe saw {audio_streams}")
    track = audio[position]
    names = _AUDIO_ENTRIES.get(track.entry, frozenset())
    if not (audio_codec.startswith("pcm_") if names is None else audio_codec in names):
        raise LayoutError(f"sample entry {track.entry!r} is not {audio_codec!r}")
    if track.stbl is None:
        raise LayoutError("audio track without a sample table")
    _check_self_contained(moov, track.trak)

    stbl_kids = _children(moov, track.stbl)
    offsets_box: Box
    if b"stco" in stbl_kids and b"co64" not in stbl_kids:
        offsets_box, wide = _one(stbl_kids, b"stco", "stbl"), False
    elif b"co64" in stbl_kids and b"stco" not in stbl_kids:
        offsets_box, wide = _one(stbl_kids, b"co64", "stbl"), True
    else:
        raise LayoutError("expected exactly one of stco and co64")
    (chunks,) = struct.unpack_from(">I", moov, offsets_box.body + 4)
    table_at = offsets_box.body + 8
    if table_at + (8 if wide else 4) * chunks > offsets_box.end or chunks == 0:
        raise LayoutError("bad chunk offset table")
    offsets = array("Q", _u64s(moov, table_at, chunks) if wide else _u32s(moov, table_at, chunks))
    sizes = _chunk_sizes(moov, track.stbl, chunks)
    _check_ranges(offsets, sizes, media)

    # The compact file: ftyp, moov (mvhd + this trak), mdat. The trak keeps its size (same table
    # length), so only the chunk offsets change.
    payload = sum(sizes)
    trak = track.trak
    new_moov_size = 8 + mvhd.size + trak.size
    mdat_header = 8 if payload + 8 <= _U32 else 16
    start = len(ftyp) + new_moov_size + mdat_header
    new_offsets = array("Q", itertools.accumulate(sizes, initial=start))[:-1]
    if not wide and new_offsets[-1] > _U32:
        raise LayoutError("the compact file would need 64-bit chunk offsets")
    table = array("Q" if wide else "I", new_offsets)
    if sys.byteorder == "little":
        table.byteswap()
    trak_bytes = bytearray(moov[trak.offset:trak.end])
    rel = table_at - trak.offset
    trak_bytes[rel:rel + len(table.tobytes())] = table.tobytes()
    mdat = (struct.pack(">I4s", payload + 8, b"mdat") if mdat_header == 8
            else struct.pack(">I4sQ", 1, b"mdat", payload + 16))
    head = b"".join([ftyp, struct.pack(">I4s", new_moov_size, b"moov"), moov[mvhd.offset:mvhd.end],
                     bytes(trak_bytes), mdat])
    return AudioExtract(head, offsets, sizes, track.entry)


def _check_self_contained(moov: bytes, trak: Box) -> None:
    """Every data reference of the track points into this file (flag 1), not to another one."""
    for box in _walk(moov, trak):
        if box.kind == b"dref":
            (count,) = struct.unpack_from(">I", moov, box.body + 4)
            entries = list(iter_boxes(moov, box.body + 8, box.end))
            if len(entries) != count:
                raise LayoutError("bad data reference box")
            for entry in entries:
                (flags,) = struct.unpack_from(">I", moov, entry.body)
                if not flags & 1:
                    raise LayoutError("the track's media is in another file")


def _check_ranges(offsets: Sequence[int], sizes: Sequence[int], media: Sequence[tuple[int, int]]) -> None:
    """Chunks in file order, not overlapping, each inside one mdat payload."""
    spans = sorted(media)
    span = 0
    previous_end = 0
    for offset, size in zip(offsets, sizes, strict=True):
        if offset < previous_end:
            raise LayoutError("chunks out of order or overlapping")
        while span < len(spans) and spans[span][1] <= offset:
            span += 1
        if span == len(spans) or not spans[span][0] <= offset or offset + size > spans[span][1]:
            raise LayoutError(f"a chunk at {offset} ({size} bytes) is not inside the media data")
        previous_end = offset + size
