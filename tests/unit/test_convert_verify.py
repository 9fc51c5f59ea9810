"""Success is exit 0 and an output that decodes to the source's audio length; the rest is classified."""

from __future__ import annotations

import pytest

from vid2mp3.convert.failures import Transient
from vid2mp3.convert.runner import RunResult
from vid2mp3.convert.verify import Mp3Facts, check_output, classify_run, samples_per_frame
from vid2mp3.errors import PermanentFailure


def run(returncode: int = 0, *, timed_out: bool = False, stderr: str = "") -> RunResult:
    return RunResult(returncode, stderr, 1.0, timed_out, 0.0)


def facts(duration: float, codec: str = "mp3") -> Mp3Facts:
    return Mp3Facts(duration, round(duration * 44100 / 1152), 44100, codec)


def test_samples_per_frame() -> None:
    assert samples_per_frame(44100) == samples_per_frame(48000) == samples_per_frame(32000) == 1152
    assert samples_per_frame(22050) == samples_per_frame(8000) == 576


def test_clean_exit_passes() -> None:
    classify_run(run(0), timeout_was_ours=True)


def test_nonzero_exit_is_undecodable() -> None:
    with pytest.raises(PermanentFailure) as caught:
        classify_run(run(1, stderr="Invalid data found when processing input"), timeout_was_ours=True)
    assert caught.value.code == "undecodable"


def test_our_timeout_is_permanent_the_invocations_is_not() -> None:
    with pytest.raises(PermanentFailure) as caught:
        classify_run(run(-9, timed_out=True), timeout_was_ours=True)
    assert caught.value.code == "conversion_timeout"
    with pytest.raises(Transient):
        classify_run(run(-9, timed_out=True), timeout_was_ours=False)


def test_killed_by_a_signal_or_a_full_disk_is_transient() -> None:
    with pytest.raises(Transient):
        classify_run(run(-9), timeout_was_ours=True)
    with pytest.raises(Transient):
        classify_run(run(1, stderr="av_interleaved_write_frame(): No space left on device"), timeout_was_ours=True)


@pytest.mark.parametrize("measured", [10.0, 9.6, 10.49])
def test_matching_duration_passes(measured: float) -> None:
    assert check_output(facts(measured), 10.0).duration_s == measured


def test_short_output_is_truncated() -> None:
    with pytest.raises(PermanentFailure) as caught:
        check_output(facts(5.0), 10.0)
    assert caught.value.code == "truncated" and "5.0 s of 10.0 s" in caught.value.message


def test_long_output_is_a_mismatch() -> None:
    with pytest.raises(PermanentFailure) as caught:
        check_output(facts(10.6), 10.0)
    assert caught.value.code == "duration_mismatch"


@pytest.mark.parametrize("measured", [None, facts(10.0, codec="aac")])
def test_unreadable_or_wrong_output_is_undecodable(measured: Mp3Facts | None) -> None:
    with pytest.raises(PermanentFailure) as caught:
        check_output(measured, 10.0)
    assert caught.value.code == "undecodable"
