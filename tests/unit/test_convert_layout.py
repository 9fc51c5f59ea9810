"""MP4 layout and the audio-only cut (vid2mp3.media.layout) on synthetic files built here, box by box.

The real thing (files written by ffmpeg, the cut compared packet for packet) is in the integration tier.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from vid2mp3.media.layout import (
    MP4_DEMUXER,
    Box,
    LayoutError,
    audio_only_mp4,
    iter_boxes,
    looks_like,
    top_level_boxes,
)

# --- a tiny MP4 writer ------------------------------------------------------------------------------------


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, *payload: bytes, flags: int = 0) -> bytes:
    return box(kind, struct.pack(">I", flags), *payload)


@dataclass
class Track:
    handler: bytes  # b"soun", b"vide"
    entry: bytes  # sample entry code: b"mp4a", b"avc1"
    chunks: list[list[bytes]]  # the samples of each chunk
    co64: bool = False
    dref_flags: int = 1
    extra_stbl: list[bytes] = field(default_factory=list)
    fixed_size: bool = False  # stsz with one size for all samples

    def trak(self, offsets: list[int]) -> bytes:
        samples = [s for chunk in self.chunks for s in chunk]
        # stsc: one entry per run of equal samples-per-chunk
        runs: list[tuple[int, int]] = []
        for i, chunk in enumerate(self.chunks, start=1):
            if not runs or runs[-1][1] != len(chunk):
                runs.append((i, len(chunk)))
        stsc = full(b"stsc", struct.pack(">I", len(runs)),
                    *(struct.pack(">III", first, n, 1) for first, n in runs))
        if self.fixed_size:
            stsz = full(b"stsz", struct.pack(">II", len(samples[0]), len(samples)))
        else:
            stsz = full(b"stsz", struct.pack(">II", 0, len(samples)), *(struct.pack(">I", len(s)) for s in samples))
        if self.co64:
            stco = full(b"co64", struct.pack(">I", len(offsets)), *(struct.pack(">Q", o) for o in offsets))
        else:
            stco = full(b"stco", struct.pack(">I", len(offsets)), *(struct.pack(">I", o) for o in offsets))
        stsd = full(b"stsd", struct.pack(">I", 1), box(self.entry, b"\0" * 28))
        dref = full(b"dref", struct.pack(">I", 1), full(b"url ", flags=self.dref_flags))
        hdlr = full(b"hdlr", b"\0" * 4, self.handler, b"\0" * 12, b"handler\0")
        stbl = box(b"stbl", stsd, full(b"stts", struct.pack(">I", 0)), stsc, stsz, stco, *self.extra_stbl)
        return box(b"trak", full(b"tkhd", b"\0" * 80),
                   box(b"mdia", full(b"mdhd", b"\0" * 20), hdlr, box(b"minf", box(b"dinf", dref), stbl)))


def mp4(tracks: list[Track], *, moov_first: bool = False, ftyp: bool = True, large_mdat: bool = False,
        moov_extra: bytes = b"") -> tuple[bytes, dict[int, list[int]]]:
    """An MP4 with the tracks' chunks interleaved in one mdat; returns it and each track's chunk offsets."""
    head = box(b"ftyp", b"isom", b"\0\0\2\0", b"isomiso2mp41") if ftyp else b""
    order = [(t, c) for c in range(max(len(t.chunks) for t in tracks)) for t in range(len(tracks))
             if c < len(tracks[t].chunks)]
    payload = b"".join(b"".join(tracks[t].chunks[c]) for t, c in order)

    def moov(offsets: dict[int, list[int]]) -> bytes:
        return box(b"moov", full(b"mvhd", b"\0" * 96),
                   *(t.trak(offsets.get(i, [0] * len(t.chunks))) for i, t in enumerate(tracks)), moov_extra)

    mdat_header = 16 if large_mdat else 8
    data_at = len(head) + (len(moov({})) if moov_first else 0) + mdat_header
    offsets: dict[int, list[int]] = {i: [] for i in range(len(tracks))}
    pos = data_at
    for t, c in order:
        offsets[t].append(pos)
        pos += sum(len(s) for s in tracks[t].chunks[c])
    mdat = (struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) if large_mdat
            else struct.pack(">I4s", 8 + len(payload), b"mdat")) + payload
    parts = [head, moov(offsets), mdat] if moov_first else [head, mdat, moov(offsets)]
    return b"".join(parts), offsets


def audio(n_chunks: int = 5, **kw: object) -> Track:
    return Track(b"soun", b"mp4a", [[bytes([65 + c]) * (10 + s) for s in range(1 + c % 3)]
                                    for c in range(n_chunks)], **kw)  # type: ignore[arg-type]


def video(n_chunks: int = 5) -> Track:
    return Track(b"vide", b"avc1", [[b"V" * 300] for _ in range(n_chunks)])


def cut(data: bytes, **kw: object) -> tuple[bytes, bytes]:
    """The audio-only MP4 of `data`, assembled as the converter streams it; and the audio payload."""
    boxes = top_level_boxes(lambda o, n: data[o:o + n], len(data))
    ftyp = next((data[b.offset:b.end] for b in boxes if b.kind == b"ftyp"), b"")
    moov = next(b for b in boxes if b.kind == b"moov")
    args: dict[str, object] = {"audio_codec": "aac", "audio_streams": 1} | kw
    extract = audio_only_mp4(ftyp, data[moov.offset:moov.end], media=[(b.body, b.end) for b in boxes
                                                                        if b.kind == b"mdat"], **args)  # type: ignore[arg-type]
    payload = b"".join(data[o:o + s] for o, s in zip(extract.offsets, extract.sizes, strict=True))
    assert extract.size == len(extract.head) + len(payload)
    return extract.head + payload, payload


def chunk_offsets(compact: bytes) -> list[int]:
    """The stco/co64 entries of the compact file's one trak."""
    [moov] = [b for b in iter_boxes(compact) if b.kind == b"moov"]
    stack: list[Box] = [moov]
    while stack:
        b = stack.pop()
        for child in iter_boxes(compact, b.body, b.end):
            if child.kind in (b"stco", b"co64"):
                (n,) = struct.unpack_from(">I", compact, child.body + 4)
                fmt = ">%dQ" if child.kind == b"co64" else ">%dI"
                return list(struct.unpack_from(fmt % n, compact, child.body + 8))
            if child.kind in (b"trak", b"mdia", b"minf", b"stbl"):
                stack.append(child)
    raise AssertionError("no chunk offsets")


# --- top-level boxes --------------------------------------------------------------------------------------


def test_top_level_boxes_reads_headers_only_and_handles_64_bit_sizes() -> None:
    data, _ = mp4([video(), audio()], large_mdat=True)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, n: int) -> bytes:
        reads.append((offset, n))
        return data[offset:offset + n]

    boxes = top_level_boxes(read_at, len(data))
    assert [b.kind for b in boxes] == [b"ftyp", b"mdat", b"moov"]
    assert boxes[1].header == 16 and boxes[-1].end == len(data)
    assert all(n <= 16 for _, n in reads) and len(reads) == 3


def test_size_zero_box_runs_to_the_end() -> None:
    data = box(b"ftyp", b"isom") + struct.pack(">I4s", 0, b"mdat") + b"x" * 100
    assert [(b.kind, b.size) for b in top_level_boxes(lambda o, n: data[o:o + n], len(data))] == [
        (b"ftyp", 12), (b"mdat", 108)]


@pytest.mark.parametrize("data", [
    box(b"ftyp", b"isom") + struct.pack(">I4s", 1000, b"mdat") + b"x" * 10,  # runs past the end
    box(b"ftyp", b"isom") + struct.pack(">I4s", 4, b"mdat"),  # smaller than its header
    box(b"ftyp", b"isom") + b"\0\0",  # truncated header
    struct.pack(">I4s", 1, b"mdat") + b"\0\0",  # truncated 64-bit header
])
def test_impossible_boxes_are_refused(data: bytes) -> None:
    with pytest.raises(LayoutError):
        top_level_boxes(lambda o, n: data[o:o + n], len(data))


# --- magic ------------------------------------------------------------------------------------------------


def test_looks_like() -> None:
    assert looks_like("matroska,webm", b"\x1a\x45\xdf\xa3rest")
    assert looks_like("ogg", b"OggS\0")
    assert looks_like("wav", b"RIFF\0\0\0\0WAVEfmt ")
    assert not looks_like("wav", b"RIFF\0\0\0\0AVI LIST")
    assert looks_like("flac", b"fLaC\0")
    id3 = b"ID3\x03\x00\x00\x00\x00\x00\x05" + b"\0" * 5
    assert looks_like("flac", id3 + b"fLaC")
    assert looks_like("mp3", id3 + b"\xff\xfb\x90\x00") and looks_like("mp3", b"\xff\xf3\x90")
    assert looks_like("aac", b"\xff\xf1\x50\x80") and not looks_like("aac", b"\xff\xfb\x90")
    ts = bytearray(188 * 4)
    for i in range(4):
        ts[188 * i] = 0x47
    assert looks_like("mpegts", bytes(ts)) and not looks_like("mpegts", bytes(188 * 4))
    assert looks_like(MP4_DEMUXER, box(b"ftyp", b"isom")) and not looks_like(MP4_DEMUXER, b"#EXTM3U\n....")
    assert not looks_like("matroska,webm", b"#EXTM3U\n") and not looks_like("avi", b"RIFF\0\0\0\0AVI ")


# --- the audio-only cut -----------------------------------------------------------------------------------


@pytest.mark.parametrize("moov_first", [False, True])
def test_cut_holds_the_first_audio_track_with_rewritten_offsets(moov_first: bool) -> None:
    tracks = [video(), audio(), Track(b"soun", b"mp4a", [[b"second track"]] * 5)]
    data, offsets = mp4(tracks, moov_first=moov_first)

    compact, payload = cut(data, audio_streams=2)

    assert payload == b"".join(b"".join(chunk) for chunk in tracks[1].chunks)
    kinds = [b.kind for b in iter_boxes(compact)]
    assert kinds == [b"ftyp", b"moov", b"mdat"]
    [moov] = [b for b in iter_boxes(compact) if b.kind == b"moov"]
    assert [b.kind for b in iter_boxes(compact, moov.body, moov.end)] == [b"mvhd", b"trak"]
    # every chunk offset points at that chunk's bytes in the compact file
    new = chunk_offsets(compact)
    assert len(new) == len(offsets[1])
    for offset, chunk in zip(new, tracks[1].chunks, strict=True):
        assert compact[offset:offset + sum(map(len, chunk))] == b"".join(chunk)
    # the trak is the original one but for its offsets
    original_moov = next(b for b in iter_boxes(data) if b.kind == b"moov")
    original_traks = [b for b in iter_boxes(data, original_moov.body, original_moov.end) if b.kind == b"trak"]
    new_trak = next(b for b in iter_boxes(compact, moov.body, moov.end) if b.kind == b"trak")
    assert new_trak.size == original_traks[1].size


def test_cut_keeps_co64_and_fixed_sample_sizes() -> None:
    track = Track(b"soun", b".mp3", [[b"m" * 50] * 2, [b"n" * 50] * 3], co64=True, fixed_size=True)
    data, _ = mp4([video(2), track])
    compact, payload = cut(data, audio_codec="mp3")
    assert payload == b"m" * 100 + b"n" * 150
    assert chunk_offsets(compact)[1] - chunk_offsets(compact)[0] == 100


def test_cut_without_ftyp() -> None:
    data, _ = mp4([video(), audio()], ftyp=False)
    compact, _ = cut(data)
    assert [b.kind for b in iter_boxes(compact)] == [b"moov", b"mdat"]


def test_pcm_entries_match_any_pcm_codec() -> None:
    data, _ = mp4([Track(b"soun", b"sowt", [[b"pcm"]])])
    cut(data, audio_codec="pcm_s16le")
    with pytest.raises(LayoutError):
        cut(data, audio_codec="aac")


@pytest.mark.parametrize(("tracks", "kw", "moov_extra"), [
    ([video()], {}, b""),  # no audio
    ([video(), audio()], {"audio_streams": 2}, b""),  # the probe saw another audio stream
    ([video(), audio()], {"audio_codec": "pcm_s16le"}, b""),  # not what the probe saw
    ([video(), Track(b"data", b"mp4a", [[b"x"]] * 5), audio()], {}, b""),  # ffmpeg calls that audio too
    ([video(), audio(dref_flags=0)], {}, b""),  # media in another file
    ([video(), audio(extra_stbl=[full(b"saio", b"\0" * 8)])], {}, b""),  # offsets we would not rewrite
    ([video(), audio()], {}, box(b"mvex", full(b"trex", b"\0" * 20))),  # fragmented
    ([video(), Track(b"soun", b"mp4a", [[b"x"]] * 5, extra_stbl=[full(b"co64", b"\0" * 4)])], {}, b""),
], ids=["no-audio", "count", "codec", "data-handler", "external", "saio", "fragmented", "stco-and-co64"])
def test_cut_refuses_what_it_does_not_fully_understand(tracks: list[Track], kw: dict[str, object],
                                                       moov_extra: bytes) -> None:
    data, _ = mp4(tracks, moov_extra=moov_extra)
    with pytest.raises(LayoutError):
        cut(data, **kw)


def test_cut_refuses_chunks_outside_the_media_data_or_out_of_order() -> None:
    data, offsets = mp4([video(), audio()])
    moov = next(b for b in iter_boxes(data) if b.kind == b"moov")
    mdat = next(b for b in iter_boxes(data) if b.kind == b"mdat")
    moov_bytes = data[moov.offset:moov.end]
    ftyp = data[:next(iter_boxes(data)).end]
    args = {"audio_codec": "aac", "audio_streams": 1}
    with pytest.raises(LayoutError, match="not inside"):  # the file was cut short
        audio_only_mp4(ftyp, moov_bytes, media=[(mdat.body, offsets[1][2])], **args)  # type: ignore[arg-type]
    swapped = moov_bytes.replace(struct.pack(">II", offsets[1][0], offsets[1][1]),
                                 struct.pack(">II", offsets[1][1], offsets[1][0]))
    assert swapped != moov_bytes
    with pytest.raises(LayoutError):
        audio_only_mp4(ftyp, swapped, media=[(mdat.body, mdat.end)], **args)  # type: ignore[arg-type]


def test_malformed_moov_is_a_layout_error() -> None:
    data, _ = mp4([video(), audio()])
    moov = next(b for b in iter_boxes(data) if b.kind == b"moov")
    moov_bytes = bytearray(data[moov.offset:moov.end])
    at = moov_bytes.rfind(b"stsz")  # the audio track's
    moov_bytes[at + 12:at + 16] = struct.pack(">I", 10_000)  # more samples than the table holds
    with pytest.raises(LayoutError):
        audio_only_mp4(b"", bytes(moov_bytes), media=[(0, len(data))], audio_codec="aac", audio_streams=1)
