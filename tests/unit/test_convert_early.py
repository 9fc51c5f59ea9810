"""The MP3 sent to the store while ffmpeg writes it (vid2mp3.convert.early), against the in-memory store:
what is stored in the end is the finished file to the byte, whatever was rewritten, shrunk or refused on
the way, and nothing is visible before the end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from vid2mp3.convert.early import EarlyMp3
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.objectstore import CHUNK_SIZE, MP3S_BUCKET
from vid2mp3.objectstore.memory import InMemoryObjectStore

OID = "mp3-of-job-1"


def grow(path: Path, data: bytes, step: int = CHUNK_SIZE // 3) -> None:
    """Append `data` in pieces, as an encoder does."""
    with open(path, "ab") as f:
        for at in range(0, len(data), step):
            f.write(data[at:at + step])
            f.flush()
            time.sleep(0.005)


def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def stored(store: InMemoryObjectStore) -> bytes:
    return b"".join(store.read(MP3S_BUCKET, OID))


def test_whole_chunks_go_early_and_the_rewritten_start_is_sent_again(tmp_path: Path) -> None:
    store, path = InMemoryObjectStore(), tmp_path / "audio.mp3"
    data = bytearray(os.urandom(5 * CHUNK_SIZE + 1234))
    with EarlyMp3(store, MP3S_BUCKET, OID, path, poll_s=0.01) as early:
        grow(path, bytes(data))
        wait_for(lambda: 4 in early.sent)  # chunks 1-4 are whole: sent while "ffmpeg" still runs
        assert 0 not in early.sent  # the start is rewritten at the end: it waits
        assert store.stat(MP3S_BUCKET, OID) is None  # nothing visible before the MP3 is verified
    # the muxer goes back: the Xing frame at the start, and (say) a byte in chunk 2
    data[10:20] = b"X" * 10
    data[2 * CHUNK_SIZE + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    early.finish(filename="a.mp3", metadata={"job_id": "1"})
    assert stored(store) == bytes(data)
    assert store.stat(MP3S_BUCKET, OID).length == len(data)


def test_a_file_shorter_than_what_was_sent_is_stored_as_it_is(tmp_path: Path) -> None:
    store, path = InMemoryObjectStore(), tmp_path / "audio.mp3"
    with EarlyMp3(store, MP3S_BUCKET, OID, path, poll_s=0.01) as early:
        grow(path, os.urandom(4 * CHUNK_SIZE))
        wait_for(lambda: 2 in early.sent)
    final = os.urandom(CHUNK_SIZE + 10)
    path.write_bytes(final)
    early.finish(filename="a.mp3", metadata={})
    assert stored(store) == final


class RefusingStore(InMemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.refuse = True

    def write_chunks(self, bucket: str, object_id: str, first: int, data: bytes) -> None:
        if self.refuse:
            self.refuse = False
            raise DependencyUnavailable("the store is away")
        super().write_chunks(bucket, object_id, first, data)


def test_a_store_that_fails_meanwhile_only_leaves_more_for_the_end(tmp_path: Path) -> None:
    store, path = RefusingStore(), tmp_path / "audio.mp3"
    data = os.urandom(3 * CHUNK_SIZE + 7)
    with EarlyMp3(store, MP3S_BUCKET, OID, path, poll_s=0.01) as early:
        grow(path, data)
        wait_for(lambda: early.failed)
    early.finish(filename="a.mp3", metadata={})
    assert stored(store) == data


def test_a_small_mp3_is_stored_whole_at_the_end(tmp_path: Path) -> None:
    store, path = InMemoryObjectStore(), tmp_path / "audio.mp3"
    with EarlyMp3(store, MP3S_BUCKET, OID, path, poll_s=0.01) as early:
        path.write_bytes(b"ID3" + os.urandom(1000))
    assert early.sent == {}
    early.finish(filename="a.mp3", metadata={})
    assert stored(store) == path.read_bytes()


def test_discard_leaves_nothing_and_chunks_an_earlier_attempt_left_are_gone_first(tmp_path: Path) -> None:
    store, path = InMemoryObjectStore(), tmp_path / "audio.mp3"
    store.write_chunks(MP3S_BUCKET, OID, 0, b"\x00" * (3 * CHUNK_SIZE))  # a killed attempt's orphans
    early = EarlyMp3(store, MP3S_BUCKET, OID, path, poll_s=0.01)
    with early:
        assert store.chunks.get((MP3S_BUCKET, OID)) is None
        grow(path, os.urandom(3 * CHUNK_SIZE))
        wait_for(lambda: 2 in early.sent)
    early.discard()
    assert not store.chunks.get((MP3S_BUCKET, OID)) and store.stat(MP3S_BUCKET, OID) is None


def test_the_sending_thread_ends_with_the_block(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    with EarlyMp3(InMemoryObjectStore(), MP3S_BUCKET, OID, tmp_path / "audio.mp3", poll_s=0.01):
        assert "mp3-early" in {t.name for t in threading.enumerate()}
    assert "mp3-early" not in {t.name for t in threading.enumerate()} - before


@pytest.mark.parametrize("n", [0, 3])
def test_replace_chunk_touches_only_its_chunk(n: int) -> None:
    store = InMemoryObjectStore()
    store.write_chunks(MP3S_BUCKET, OID, 0, b"a" * (4 * CHUNK_SIZE))
    store.replace_chunk(MP3S_BUCKET, OID, n, b"b" * CHUNK_SIZE)
    store.seal(MP3S_BUCKET, OID, 4 * CHUNK_SIZE, filename="a", metadata={})
    data = stored(store)
    assert data[n * CHUNK_SIZE:(n + 1) * CHUNK_SIZE] == b"b" * CHUNK_SIZE
    assert data.count(b"a") == 3 * CHUNK_SIZE
