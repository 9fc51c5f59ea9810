"""How ffmpeg is fed a job's video (vid2mp3.convert.source), against the in-memory store."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_convert_layout import Track, audio, cut, mp4, video
from vid2mp3.convert import source
from vid2mp3.convert.source import InputMode, Prefetch, ReadAhead, choose_input
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs import Job
from vid2mp3.media.layout import MP4_DEMUXER, LayoutError
from vid2mp3.objectstore import VIDEOS_BUCKET, StoredObject
from vid2mp3.objectstore.memory import InMemoryObjectStore

MKV_MAGIC = b"\x1a\x45\xdf\xa3"


class ChunkedStore(InMemoryObjectStore):
    """Reads come in pieces of `piece` bytes, like GridFS chunks; every ranged read is recorded."""

    def __init__(self, piece: int = 1000) -> None:
        super().__init__()
        self.piece = piece
        self.reads: list[tuple[int, int | None]] = []
        self.truncate_to: int | None = None  # pretend the stored bytes end here

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        data = b"".join(super().read(bucket, object_id, start, end))
        self.reads.append((start, end))
        if self.truncate_to is not None:
            data = data[:max(0, self.truncate_to - start)]
        return iter([data[i:i + self.piece] for i in range(0, len(data), self.piece)])


def summary(fmt: str = MP4_DEMUXER, **kw: Any) -> dict[str, Any]:
    return {"format": fmt, "duration_s": 10.0, "has_video": True, "audio_codec": "aac", "audio_channels": 2,
            "audio_sample_rate": 44100, "audio_streams": 1, "audio_duration_s": 9.9,
            "audio_bit_rate": 128000} | kw


def job_for(store: InMemoryObjectStore, data: bytes, media: dict[str, Any] | None, *, size: int | None = None
            ) -> Job:
    now = datetime.now(UTC)
    video_id = f"video-{uuid.uuid4().hex}"
    store.objects[(VIDEOS_BUCKET, video_id)] = (StoredObject(video_id, "v", len(data), {}), data)
    return Job(id=str(uuid.uuid4()), owner_id="u", owner_email="a@example.com", filename="v.mp4",
               content_type="video/mp4", size=len(data) if size is None else size, sha256="0" * 64,
               video_id=video_id, bitrate="192k", correlation_id="c", created_at=now, updated_at=now,
               extra={} if media is None else {"media": media})


def streamed(choice: source.InputChoice) -> bytes:
    assert choice.stream is not None
    data = b"".join(choice.stream.open())
    assert len(data) == choice.stream.size
    return data


def test_a_job_without_a_complete_summary_is_spooled() -> None:
    store = ChunkedStore()
    data = MKV_MAGIC + b"x" * 100
    for media in (None, summary("matroska,webm", audio_duration_s=None), {"format": "matroska,webm"}):
        choice = choose_input(store, job_for(store, data, media), max_duration_s=3600)
        assert choice.mode is InputMode.SPOOL and choice.stream is None


def test_matroska_is_piped_as_it_is() -> None:
    store = ChunkedStore()
    data = MKV_MAGIC + bytes(range(256)) * 20
    choice = choose_input(store, job_for(store, data, summary("matroska,webm")), max_duration_s=3600)
    assert choice.mode is InputMode.PIPE
    assert streamed(choice) == data
    assert choice.stream is not None and choice.stream.info.audio_duration_s == 9.9


@pytest.mark.parametrize(("data", "media", "size"), [
    (b"RIFF\0\0\0\0AVI " + b"x" * 100, summary("matroska,webm"), None),  # not what the probe said
    (b"RIFF\0\0\0\0AVI " + b"x" * 100, summary("avi"), None),  # not read front to back
    (MKV_MAGIC + b"x" * 100, summary("matroska,webm"), 5),  # stored size is not the uploaded one
    (MKV_MAGIC + b"x" * 100, summary("matroska,webm", audio_duration_s=7200.0), None),  # its audio is over the cap
], ids=["wrong-magic", "avi", "size", "cap"])
def test_doubts_spool(data: bytes, media: dict[str, Any], size: int | None) -> None:
    store = ChunkedStore()
    choice = choose_input(store, job_for(store, data, media, size=size), max_duration_s=3600)
    assert choice.mode is InputMode.SPOOL, choice.reason


@pytest.mark.parametrize("moov_first", [False, True])
@pytest.mark.parametrize("piece", [7, 64, 100_000])
def test_mp4_audio_is_cut_out_by_the_index(moov_first: bool, piece: int) -> None:
    store = ChunkedStore(piece)
    data, _ = mp4([video(40), audio(40)], moov_first=moov_first)
    choice = choose_input(store, job_for(store, data, summary()), max_duration_s=3600)
    assert choice.mode is InputMode.MP4_AUDIO, choice.reason
    expected, _ = cut(data)
    assert streamed(choice) == expected


def test_distant_audio_chunks_are_read_in_separate_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MERGE_GAP_BYTES", 500)
    store = ChunkedStore(256)
    big = Track(b"vide", b"avc1", [[b"V" * 5000] for _ in range(6)])
    data, _ = mp4([big, audio(6)])
    choice = choose_input(store, job_for(store, data, summary()), max_duration_s=3600)
    store.reads.clear()
    assert streamed(choice) == cut(data)[0]
    read = sum(end - start for start, end in store.reads if end is not None)
    assert len(store.reads) == 6 and read < 200  # the audio only, not 30 kB of video


def test_mp4_whose_cut_is_refused_is_piped_when_its_moov_is_first() -> None:
    store = ChunkedStore()
    first, _ = mp4([video(), audio()], moov_first=True)
    last, _ = mp4([video(), audio()], moov_first=False)
    refused = summary(audio_streams=2)  # the probe saw two audio streams, the index one
    choice = choose_input(store, job_for(store, first, refused), max_duration_s=3600)
    assert choice.mode is InputMode.PIPE and streamed(choice) == first
    choice = choose_input(store, job_for(store, last, refused), max_duration_s=3600)
    assert choice.mode is InputMode.SPOOL and "refused" in choice.reason


def test_a_store_shorter_than_the_index_fails_the_stream() -> None:
    store = ChunkedStore(100)
    data, offsets = mp4([video(), audio()])
    choice = choose_input(store, job_for(store, data, summary()), max_duration_s=3600)
    assert choice.stream is not None
    store.truncate_to = offsets[1][3]
    with pytest.raises(LayoutError, match="shorter"):
        b"".join(choice.stream.open())


def test_a_cut_mp4_spools() -> None:
    store = ChunkedStore()
    data, _ = mp4([video(), audio()], moov_first=True)
    short = data[: len(data) - 200]  # the mdat box now runs past the end
    choice = choose_input(store, job_for(store, short, summary()), max_duration_s=3600)
    assert choice.mode is InputMode.SPOOL and "MP4 boxes" in choice.reason


# --- reading ahead ------------------------------------------------------------------------------------------


def test_read_ahead_hands_on_everything_in_order_as_it_arrives(tmp_path: Path) -> None:
    pieces = [os.urandom(n) for n in (1, 300_000, 7, 1_000_000)]
    arrived = threading.Event()

    def slow() -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            if i == 2:
                arrived.wait(5)  # the first pieces were handed on before the source ended
            yield piece

    with ReadAhead(slow(), tmp_path / "ahead") as ahead:
        got = b""
        for block in ahead.chunks():
            got += block
            if len(got) >= 300_001:
                arrived.set()
            assert len(block) <= source.READ_AHEAD_BLOCK
    assert got == b"".join(pieces)
    assert not (tmp_path / "ahead").exists()


def test_read_ahead_raises_the_sources_error_after_its_data(tmp_path: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield b"before"
        raise DependencyUnavailable("The object store is unavailable.")

    got: list[bytes] = []
    with ReadAhead(failing(), tmp_path / "ahead") as ahead, pytest.raises(DependencyUnavailable):
        for block in ahead.chunks():
            got.append(block)
    assert got == [b"before"]


def test_leaving_a_read_ahead_stops_the_reading(tmp_path: Path) -> None:
    closed = threading.Event()
    produced = 0

    def endless() -> Iterator[bytes]:
        nonlocal produced
        try:
            while True:
                produced += 1
                yield b"z" * 4096
        finally:
            closed.set()

    with ReadAhead(endless(), tmp_path / "ahead") as ahead:
        next(ahead.chunks())
    assert closed.wait(5) and not (tmp_path / "ahead").exists()
    stopped_at = produced
    time.sleep(0.05)
    assert produced == stopped_at


# --- prefetching ----------------------------------------------------------------------------------------


def test_prefetch_hands_on_everything_in_order_and_bounds_the_queue() -> None:
    pulled = 0

    def counting() -> Iterator[bytes]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield bytes([i]) * 10

    with Prefetch(counting(), depth=4) as ahead:
        chunks = ahead.chunks()
        first = next(chunks)
        time.sleep(0.1)
        assert pulled <= 1 + 4 + 1  # taken, queued, and one waiting for room
        assert [first, *chunks] == [bytes([i]) * 10 for i in range(100)]


def test_prefetch_raises_the_sources_error_after_its_data() -> None:
    def failing() -> Iterator[bytes]:
        yield b"before"
        raise DependencyUnavailable("The object store is unavailable.")

    got: list[bytes] = []
    with Prefetch(failing()) as ahead, pytest.raises(DependencyUnavailable):
        for chunk in ahead.chunks():
            got.append(chunk)
    assert got == [b"before"]


def test_leaving_a_prefetch_stops_the_pulling() -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"p" * 100
        finally:
            closed.set()

    with Prefetch(endless(), depth=2) as ahead:
        next(ahead.chunks())
    assert closed.wait(5)
