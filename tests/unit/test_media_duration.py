"""Finding the last packets without reading the middle: Matroska clusters, MP4 fragments, FLV tags, and
partial copies (byte-level; the integration tier runs ffprobe over the real corpus)."""

from __future__ import annotations

import struct

import pytest

from vid2mp3.media import partial
from vid2mp3.media.duration import flv_last_audio, matroska_head_end, matroska_tail_start, mp4_tail_start
from vid2mp3.media.partial import FileReader, PartialCopyUndecided, index_box, needed_ranges


def ebml(ident: bytes, payload: bytes, *, unknown: bool = False) -> bytes:
    size = b"\x01\xff\xff\xff\xff\xff\xff\xff" if unknown else b"\x01" + len(payload).to_bytes(7, "big")
    return ident + size + payload


CLUSTER = b"\x1f\x43\xb6\x75"


def cluster(timestamp: int, blocks: bytes = b"\xa3\x84\x81\x00\x00\x80") -> bytes:
    return ebml(CLUSTER, b"\xe7\x82" + timestamp.to_bytes(2, "big") + blocks)


def test_matroska_head_ends_at_the_first_cluster():
    head = (ebml(b"\x1a\x45\xdf\xa3", b"\x42\x82\x84webm")
            + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"  # a Segment of unknown size (MediaRecorder)
            + ebml(b"\x15\x49\xa9\x66", b"info") + ebml(b"\x16\x54\xae\x6b", b"tracks"))
    assert matroska_head_end(head + cluster(0)) == len(head)
    assert matroska_head_end(head) is None  # no cluster within what was read
    assert matroska_head_end(b"RIFF" + head) is None


def test_matroska_tail_starts_at_a_real_cluster():
    decoy = CLUSTER + b"\x81\x00"  # the ID inside a frame, not followed by a Timestamp
    tail = b"\x00" * 10 + decoy + b"junk" + cluster(3000) + cluster(4000)
    assert matroska_tail_start(tail) == 10 + len(decoy) + 4
    crc = ebml(CLUSTER, b"\xbf\x84abcd\xe7\x81\x05")  # a CRC-32 may come first
    assert matroska_tail_start(b"xx" + crc) == 2
    assert matroska_tail_start(b"no clusters" + decoy) is None


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_mp4_tail_starts_at_a_fragment_that_runs_to_the_end():
    fragments = box(b"moof", box(b"mfhd", b"\0" * 8)) + box(b"mdat", b"x" * 50)
    tail = b"..moof..." + b"\0" * 7 + fragments + fragments
    assert mp4_tail_start(tail) == 16
    assert mp4_tail_start(tail[:-3]) is None  # cut short: nothing tiles to the end
    assert mp4_tail_start(b"mdat" * 4) is None


def flv(tags: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09" + b"\0\0\0\0")
    for kind, ms, data in tags:
        tag = bytes([kind]) + len(data).to_bytes(3, "big") + (ms & 0xFFFFFF).to_bytes(3, "big") + bytes([ms >> 24])
        tag += b"\0\0\0" + data
        out += tag + len(tag).to_bytes(4, "big")
    return bytes(out)


def test_flv_last_audio_tag_by_the_back_pointers(tmp_path):
    aac = bytes([0xAF, 1]) + b"frame"
    path = tmp_path / "live.flv"
    path.write_bytes(flv([(8, 0, bytes([0xAF, 0]) + b"\x12\x10"), (9, 0, b"\x17video"), (8, 2000, aac),
                          (9, 2040, b"\x27video"), (18, 2050, b"meta")]))
    end = flv_last_audio(FileReader.open(path), sample_rate=44100, limit=1 << 20)
    assert end == pytest.approx(2.0 + 1024 / 44100)
    assert flv_last_audio(FileReader.open(path), sample_rate=44100, limit=30) is None  # not within the limit
    broken = tmp_path / "broken.flv"
    broken.write_bytes(path.read_bytes()[:-1])
    assert flv_last_audio(FileReader.open(broken), sample_rate=44100, limit=1 << 20) is None
    extended = tmp_path / "late.flv"  # timestamps past 2^24 ms (4.6 hours) use the extension byte
    extended.write_bytes(flv([(8, 0x1234567, aac)]))
    assert flv_last_audio(FileReader.open(extended), sample_rate=48000, limit=1 << 20) == pytest.approx(
        0x1234567 / 1000 + 1024 / 48000)


def test_a_partial_copy_reads_only_what_it_holds(tmp_path):
    path = tmp_path / "sparse"
    path.write_bytes(b"h" * 100 + b"\0" * 800 + b"t" * 100)
    whole = FileReader.open(path)
    assert whole.read(0, 1000).count(b"\0") == 800
    copy = FileReader.open(path, [(900, 1000), (0, 100)])
    assert copy.read(0, 100) == b"h" * 100 and copy.read(950, 2000) == b"t" * 50
    with pytest.raises(PartialCopyUndecided):
        copy.read(50, 150)


def mp4_moov_in_the_middle() -> bytes:
    return box(b"ftyp", b"isom") + box(b"mdat", b"a" * 1000) + box(b"moov", b"m" * 200) + box(b"mdat", b"b" * 1000)


def test_needed_ranges_hold_head_tail_and_the_index(monkeypatch):
    data = mp4_moov_in_the_middle()
    monkeypatch.setattr(partial, "PARTIAL_HEAD_BYTES", 64)
    monkeypatch.setattr(partial, "PARTIAL_TAIL_BYTES", 64)
    moov_at = data.find(b"moov") - 4
    ranges = needed_ranges(lambda offset, n: data[offset:offset + n], len(data))
    assert ranges == [(0, 64), (moov_at, moov_at + 208), (len(data) - 64, len(data))]
    assert needed_ranges(lambda offset, n: data[offset:offset + n], 100) == [(0, 100)]  # small: all of it


def test_index_of_an_avi():
    movi = b"LIST" + struct.pack("<I", 4 + 9) + b"movi" + b"00dc" + struct.pack("<I", 1) + b"x" + b"\0"
    idx1 = b"idx1" + struct.pack("<I", 16) + b"i" * 16
    hdrl = b"LIST" + struct.pack("<I", 8) + b"hdrlavih"
    body = b"AVI " + hdrl + movi + idx1
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    start = data.find(b"idx1")
    assert index_box(lambda offset, n: data[offset:offset + n], len(data), data[:64]) == (start, start + 24)
    assert index_box(lambda offset, n: data[offset:offset + n], len(data), b"OggS" + data[4:64]) is None
