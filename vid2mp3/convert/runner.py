"""Run ffmpeg as a child process: a wall-clock limit, its `-progress` read as it goes, nothing left behind.

- The main thread starts ffmpeg and reads its two pipes with a selector until it exits or the deadline
  passes; then it is killed (SIGKILL) and reaped. However the call ends (an exception included), no
  ffmpeg outlives it.
- On Linux the child also gets PR_SET_PDEATHSIG=SIGKILL: if this worker is killed (SIGKILL, the
  invocation timeout), the kernel kills ffmpeg too, instead of leaving it running.
- `-progress pipe:1` lines are parsed here; the position is handed to `on_progress` (seconds of
  output written). Writing it to the job is ProgressReporter's business, on its own thread, at most
  once a second, so a slow database never stalls the pipes or the deadline.
- `stdin`: when given (the input is `pipe:0`), its chunks are written to ffmpeg's standard input by a
  feeder thread, so reading the source (from GridFS) overlaps the conversion. ffmpeg closing its input
  early (it has all it needs, or it failed) just stops the feeder. An error *reading the source* kills
  ffmpeg at once (it must not finish on a short input and exit 0) and is raised by run_ffmpeg once
  everything is reaped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from vid2mp3.convert.failures import Transient
from vid2mp3.media.binaries import tool_env

STDERR_TAIL_BYTES = 8 * 1024
PIPE_BUFFER_BYTES = 1 << 20  # ffmpeg's standard input: 1 MiB instead of 64 KiB, fewer wake-ups
FEEDER_JOIN_S = 30.0
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031  # Linux


@dataclass(frozen=True)
class RunResult:
    returncode: int  # negative: killed by that signal
    stderr: str  # the last STDERR_TAIL_BYTES of it
    elapsed_s: float
    timed_out: bool
    position_s: float  # the last output position ffmpeg reported
    input_wait_s: float = 0.0  # with `stdin`: how long the feeder waited for its source


class _Feeder:
    """Writes chunks to a child's standard input on a daemon thread (see the module's docstring)."""

    def __init__(self, chunks: Iterable[bytes], pipe: IO[bytes], kill: Callable[[], None]) -> None:
        self._chunks = chunks
        self._pipe = pipe
        self._kill = kill
        self.error: BaseException | None = None
        self.wait_s = 0.0
        self._started = False
        self._thread = threading.Thread(target=self._run, name="ffmpeg-stdin", daemon=True)

    def start(self) -> None:
        self._started = True
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.fcntl(self._pipe.fileno(), _F_SETPIPE_SZ, PIPE_BUFFER_BYTES)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """True when the feeder has ended."""
        if not self._started:
            self._pipe.close()
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        chunks = iter(self._chunks)
        fd = self._pipe.fileno()
        try:
            while True:
                started = time.monotonic()
                chunk = next(chunks, None)
                self.wait_s += time.monotonic() - started
                if chunk is None:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        except BrokenPipeError:
            pass  # ffmpeg closed its input: it ended (its exit status says how)
        except BaseException as exc:
            self.error = exc
            self._kill()  # never let ffmpeg finish a short input as if it were whole
        finally:
            close = getattr(chunks, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()  # a generator: releases its cursor
            with contextlib.suppress(OSError):
                self._pipe.close()


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the child when its parent thread dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # Runs in the child between fork and exec: nothing here may take a lock.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def parse_progress_line(line: str) -> float | None:
    """Seconds of output from one `-progress` line (`out_time_us=...`), else None."""
    key, sep, value = line.strip().partition("=")
    if not sep or key not in ("out_time_us", "out_time_ms"):  # both are microseconds (an old ffmpeg quirk)
        return None
    try:
        micros = int(value)
    except ValueError:  # "N/A" before the first packet
        return None
    return micros / 1_000_000 if micros >= 0 else None


def run_ffmpeg(
    argv: Sequence[str],
    *,
    timeout_s: float,
    on_progress: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stdin: Iterable[bytes] | None = None,
) -> RunResult:
    """Run `argv` (an ffmpeg command with `-progress pipe:1`) for at most `timeout_s` seconds.

    `stdin`: chunks to write to its standard input (its input is `pipe:0`); an exception raised while
    producing them is raised here, after ffmpeg was killed and reaped.
    """
    started = clock()
    deadline = started + max(0.0, timeout_s)
    proc = subprocess.Popen(  # a fixed argv, no shell
        list(argv),
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        bufsize=0,
        env=tool_env(),
        preexec_fn=_parent_death_signal(),  # one syscall, no locks
    )

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    feeder = None if stdin is None or proc.stdin is None else _Feeder(stdin, proc.stdin, kill)
    tail: deque[bytes] = deque()
    tail_size = 0
    pending = b""
    position = 0.0
    timed_out = False
    try:
        assert proc.stdout is not None and proc.stderr is not None
        if feeder is not None:
            feeder.start()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, "out")
            sel.register(proc.stderr, selectors.EVENT_READ, "err")
            while sel.get_map():
                remaining = deadline - clock()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(timeout=min(remaining, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    if key.data == "err":
                        tail.append(chunk)
                        tail_size += len(chunk)
                        while tail_size - len(tail[0]) >= STDERR_TAIL_BYTES:
                            tail_size -= len(tail.popleft())
                        continue
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        seconds = parse_progress_line(raw.decode("ascii", "replace"))
                        if seconds is not None:
                            position = max(position, seconds)
                            if on_progress is not None:
                                on_progress(position)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.1, deadline - clock()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        if proc.poll() is None:
            kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if feeder is None and proc.stdin is not None:
            proc.stdin.close()  # never handed to a feeder
        ended = feeder is None or feeder.join(FEEDER_JOIN_S)
    if feeder is not None:
        if feeder.error is not None:
            raise feeder.error
        if not ended:
            raise Transient(f"reading the input stalled for over {FEEDER_JOIN_S:.0f} s after ffmpeg ended")
    stderr = b"".join(tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
    return RunResult(proc.returncode, stderr, clock() - started, timed_out, position,
                     feeder.wait_s if feeder is not None else 0.0)


class ProgressReporter:
    """Turns output positions into the job's progress (0-99) and writes it at most once per `interval_s`,
    on a daemon thread. `write` errors (a database hiccup) are reported to `on_error` and skipped: progress
    is best effort and never fails a conversion."""

    def __init__(
        self,
        write: Callable[[int], None],
        expected_duration_s: float,
        *,
        interval_s: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._write = write
        self._expected = expected_duration_s
        self._interval = interval_s
        self._on_error = on_error
        self._latest: int | None = None
        self._written: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="convert-progress", daemon=True)

    def update(self, position_s: float) -> None:
        """Called by the runner for every progress line; only stores the value."""
        if self._expected > 0:
            self._latest = max(0, min(99, int(position_s * 100 / self._expected)))

    def _flush(self) -> None:
        latest = self._latest
        if latest is None or latest == self._written:
            return
        try:
            self._write(latest)
            self._written = latest
        except Exception as exc:  # best effort: report and carry on
            if self._on_error is not None:
                self._on_error(exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._flush()

    def __enter__(self) -> ProgressReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)
