"""Per-job temporary directories: removed in every outcome; leftovers of killed attempts swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vid2mp3.convert.workspace import job_workspace, sweep_stale, work_base


def test_directory_is_removed_after_success_and_error(tmp_path: Path) -> None:
    with job_workspace(tmp_path, "job-1") as d:
        (d / "source").write_bytes(b"x" * 1000)
        assert d.parent == work_base(tmp_path)
    assert not d.exists()
    with pytest.raises(RuntimeError), job_workspace(tmp_path, "job-1") as d:
        (d / "audio.mp3").write_bytes(b"y")
        raise RuntimeError
    assert not d.exists()


def test_previous_attempt_leftovers_are_removed(tmp_path: Path) -> None:
    stale = work_base(tmp_path) / "job-2"
    stale.mkdir(parents=True)
    (stale / "source").write_bytes(b"half")
    with job_workspace(tmp_path, "job-2") as d:
        assert list(d.iterdir()) == []


def test_old_directories_of_other_jobs_are_swept(tmp_path: Path) -> None:
    base = work_base(tmp_path)
    old, fresh = base / "old-job", base / "fresh-job"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "source").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with job_workspace(tmp_path, "job-3"):
        pass
    assert not old.exists() and fresh.exists()
    assert sweep_stale(base / "missing", time.time()) == []


def test_job_id_cannot_escape_the_base(tmp_path: Path) -> None:
    with job_workspace(tmp_path, "../../etc") as d:
        assert d.parent == work_base(tmp_path)
