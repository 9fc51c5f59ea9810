"""The MP3 stored while ffmpeg still writes it: whole chunks go to the store as they are written, so
that storing the MP3 after the conversion costs only what is left (its first chunk and its tail).

Nothing is visible before `finish`: chunks without a files document are invisible to every reader, and
the files document is written last, only after the MP3 was verified. ffmpeg's MP3 muxer goes back to
the start of the file when it ends (the Xing/Info frame with the frame count), so the first chunk is
never sent early; and whatever else ffmpeg may have rewritten is found at the end by each early chunk's
checksum and sent again. A store that fails meanwhile only means more is left for `finish`.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from vid2mp3.objectstore import CHUNK_SIZE, ObjectStore, StoredObject

POLL_S = 0.1


class EarlyMp3:
    """`with EarlyMp3(store, bucket, object_id, path):` around the ffmpeg run that writes `path`; then
    `finish(...)` once the MP3 is verified, or `discard()`."""

    def __init__(self, store: ObjectStore, bucket: str, object_id: str, path: Path, *,
                 poll_s: float = POLL_S) -> None:
        self.store, self.bucket, self.object_id, self.path = store, bucket, object_id, path
        self.poll_s = poll_s
        self.sent: dict[int, int] = {}  # chunk number -> crc32 of what was sent
        self.failed = False
        self._next = 1  # chunk 0 waits for the end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mp3-early", daemon=True)

    def __enter__(self) -> EarlyMp3:
        # Chunks an earlier attempt left under this id (it was killed before its files document): ours
        # must not meet them. The job's lock is held, so nobody else writes this id.
        self.store.delete(self.bucket, self.object_id)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._send_whole_chunks()

    def _send_whole_chunks(self) -> None:
        """Every whole chunk the file has past those sent (the last, possibly partial one stays)."""
        if self.failed:
            return
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        ready = size // CHUNK_SIZE  # chunks 0 .. ready-1 are whole
        if ready <= self._next:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self._next * CHUNK_SIZE)
                data = f.read((ready - self._next) * CHUNK_SIZE)
            self.store.write_chunks(self.bucket, self.object_id, self._next, data)
        except Exception:  # the store or the file: finish() sends what was not sent
            self.failed = True
            return
        for i in range(len(data) // CHUNK_SIZE):
            self.sent[self._next + i] = zlib.crc32(data[i * CHUNK_SIZE:(i + 1) * CHUNK_SIZE])
        self._next += len(data) // CHUNK_SIZE

    def finish(self, *, filename: str, metadata: Mapping[str, Any]) -> StoredObject:
        """Send what the store does not have as it is in the finished file, then the files document."""
        self.stop()
        data = self.path.read_bytes()
        if self.failed or not self.sent or len(data) < self._next * CHUNK_SIZE:  # all of it, afresh
            self.store.delete(self.bucket, self.object_id)
            self.store.write_chunks(self.bucket, self.object_id, 0, data)
        else:
            self.store.replace_chunk(self.bucket, self.object_id, 0, data[:CHUNK_SIZE])
            for n, crc in sorted(self.sent.items()):
                piece = data[n * CHUNK_SIZE:(n + 1) * CHUNK_SIZE]
                if zlib.crc32(piece) != crc:
                    self.store.replace_chunk(self.bucket, self.object_id, n, piece)
            rest = data[self._next * CHUNK_SIZE:]
            if rest:
                self.store.write_chunks(self.bucket, self.object_id, self._next, rest)
        return self.store.seal(self.bucket, self.object_id, len(data), filename=filename, metadata=metadata)

    def discard(self) -> None:
        """No MP3 after all: what was sent goes (best effort; a later attempt removes it first anyway)."""
        self.stop()
        with contextlib.suppress(Exception):  # the next attempt removes them first anyway
            self.store.delete(self.bucket, self.object_id)
