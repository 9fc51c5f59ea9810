"""Temporary files of a conversion: one directory per job, gone in every outcome.

`<tmp>/vid2mp3-convert/<job id>/` holds the spooled source and the MP3 while it is written. It is
removed when the conversion ends, however it ends. A worker killed outright (SIGKILL, the invocation
timeout) cannot clean up, so the next attempt at the same job (under the job's lock, so never while
another worker uses it) starts by removing what the killed one left, and any conversion removes job
directories older than STALE_AFTER_S (far past the 15-minute invocation limit) that another job left.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WORK_DIR_NAME = "vid2mp3-convert"
STALE_AFTER_S = 3600.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def work_base(root: Path) -> Path:
    return root / WORK_DIR_NAME


@contextmanager
def job_workspace(root: Path, job_id: str, *, clock: Callable[[], float] = time.time) -> Iterator[Path]:
    base = work_base(root)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep_stale(base, clock())
    directory = base / (_SAFE.sub("_", job_id) or "_")
    shutil.rmtree(directory, ignore_errors=True)  # what a killed attempt left behind
    directory.mkdir(mode=0o700)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def sweep_stale(base: Path, now: float, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            if now - entry.stat().st_mtime > older_than_s:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
        except OSError:
            continue
    return removed
