"""The ffmpeg runner with a stand-in executable: progress, the time limit, stderr, no orphans."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vid2mp3.convert.runner import STDERR_TAIL_BYTES, ProgressReporter, parse_progress_line, run_ffmpeg
from vid2mp3.errors import DependencyUnavailable


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_ffmpeg.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_parse_progress_line() -> None:
    assert parse_progress_line("out_time_us=1500000") == 1.5
    assert parse_progress_line("out_time_ms=2000000\n") == 2.0  # microseconds too, despite the name
    assert parse_progress_line("out_time_us=N/A") is None
    assert parse_progress_line("out_time=00:00:01.500000") is None
    assert parse_progress_line("progress=continue") is None
    assert parse_progress_line("garbage") is None


def test_reports_progress_and_exit_code(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import sys
        for us in (0, 1_000_000, 2_500_000):
            print("frame=0"); print(f"out_time_us={us}"); print("progress=continue", flush=True)
        sys.stderr.write("a warning\\n")
        print("progress=end")
        sys.exit(3)
    """)
    seen: list[float] = []
    result = run_ffmpeg(argv, timeout_s=30, on_progress=seen.append)
    assert result.returncode == 3 and not result.timed_out
    assert seen == [0.0, 1.0, 2.5] and result.position_s == 2.5
    assert "a warning" in result.stderr


def test_stderr_keeps_only_the_tail(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import sys
        for i in range(5000):
            sys.stderr.write(f"line {i:05d} " + "x" * 40 + "\\n")
    """)
    result = run_ffmpeg(argv, timeout_s=30)
    assert result.returncode == 0
    assert len(result.stderr) <= STDERR_TAIL_BYTES and "line 04999" in result.stderr
    assert "line 00000" not in result.stderr


def test_time_limit_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})  # there whole, or not at all
        print("out_time_us=1000000", flush=True)
        time.sleep(60)
    """)
    started = time.monotonic()
    result = run_ffmpeg(argv, timeout_s=1.0)
    assert result.timed_out and result.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_callback_error_still_reaps_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})  # there whole, or not at all
        print("out_time_us=1000000", flush=True)
        time.sleep(60)
    """)

    def boom(_position: float) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_ffmpeg(argv, timeout_s=30, on_progress=boom)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_ffmpeg_dies_with_a_killed_worker(tmp_path: Path) -> None:
    """The worker is SIGKILLed mid-run: the kernel kills its ffmpeg too (PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "child.pid"
    child = script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})  # there whole, or not at all
        time.sleep(120)
    """)
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from vid2mp3.convert.runner import run_ffmpeg
        run_ffmpeg({child!r}, timeout_s=120)
    """)], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the stand-in ffmpeg never started"
            time.sleep(0.05)
        ffmpeg_pid = int(pid_file.read_text())
        worker.kill()
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(ffmpeg_pid):
            assert time.monotonic() < deadline, "ffmpeg outlived its killed worker"
            time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


# --- standard input ----------------------------------------------------------------------------------------


def test_feeds_standard_input_and_measures_the_wait(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import hashlib, sys
        data = sys.stdin.buffer.read()
        sys.stderr.write(f"{len(data)} {hashlib.sha256(data).hexdigest()}")
    """)
    chunks = [os.urandom(n) for n in (1, 70_000, 3 * 1024 * 1024, 17)]

    def slow() -> Iterator[bytes]:
        for chunk in chunks:
            time.sleep(0.1)
            yield chunk

    result = run_ffmpeg(argv, timeout_s=30, stdin=slow())
    data = b"".join(chunks)
    assert result.returncode == 0 and result.stderr == f"{len(data)} {hashlib.sha256(data).hexdigest()}"
    assert result.input_wait_s >= 0.35


def test_a_child_that_stops_reading_ends_the_feeding(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import sys
        sys.stdin.buffer.read(10)
        sys.exit(4)
    """)
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 65536
        finally:
            closed.set()

    result = run_ffmpeg(argv, timeout_s=30, stdin=endless())
    assert result.returncode == 4 and not result.timed_out
    assert closed.is_set()  # the source was closed (a GridFS cursor released)


def test_a_source_error_kills_the_child_and_is_raised(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(tmp_path, f"""
        import os, sys
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})  # there whole, or not at all
        sys.stdin.buffer.read()  # EOF would look like a whole (short) input
        print("out_time_us=1000000", flush=True)
    """)

    def failing() -> Iterator[bytes]:
        yield b"x" * 1000
        while not (pid_file.exists() and pid_file.read_text()):  # created, then written: wait for both
            time.sleep(0.01)
        raise DependencyUnavailable("The object store is unavailable.")

    with pytest.raises(DependencyUnavailable):
        run_ffmpeg(argv, timeout_s=30, stdin=failing())
    assert not _alive(int(pid_file.read_text()))


def test_the_time_limit_applies_while_feeding(tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import sys, time
        sys.stdin.buffer.read(1)
        time.sleep(60)
    """)
    started = time.monotonic()
    result = run_ffmpeg(argv, timeout_s=1.0, stdin=itertools.repeat(b"y" * 65536))
    assert result.timed_out and time.monotonic() - started < 10


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_progress_reporter_writes_at_most_once_per_interval() -> None:
    writes: list[tuple[float, int]] = []
    reporter = ProgressReporter(lambda p: writes.append((time.monotonic(), p)), 100.0, interval_s=0.2)
    with reporter:
        for second in range(0, 101):
            reporter.update(float(second))
            time.sleep(0.01)
    assert writes, "nothing written"
    assert all(0 <= p <= 99 for _, p in writes)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(writes)]
    assert all(g >= 0.15 for g in gaps)
    assert len(writes) <= 1.5 / 0.2 + 2


def test_progress_reporter_swallows_and_reports_write_errors() -> None:
    errors: list[Exception] = []
    done = threading.Event()

    def broken(_p: int) -> None:
        done.set()
        raise ConnectionError("db down")

    with ProgressReporter(broken, 10.0, interval_s=0.05, on_error=errors.append) as reporter:
        reporter.update(5.0)
        assert done.wait(5)
    assert errors and isinstance(errors[0], ConnectionError)


def test_progress_reporter_without_a_duration_writes_nothing() -> None:
    writes: list[int] = []
    with ProgressReporter(writes.append, 0.0, interval_s=0.05) as reporter:
        reporter.update(3.0)
        time.sleep(0.2)
    assert writes == []
