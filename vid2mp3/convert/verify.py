"""Is the MP3 the whole of the source's audio? Measured on the written file, never taken on trust.

A killed or truncated ffmpeg leaves an MP3 that probes as valid, and a header can state any length
(design brief, "Media facts"). So success is: ffmpeg exited 0, and the output's duration *counted
from its frames* is within TOLERANCE_S of the source's audio duration.

How the frames are counted depends on who made them. A copied stream (`-c:a copy`) carries the
source's frames, damaged ones included: ffprobe decodes every frame (`-count_frames`) and counts only
those that decode. An MP3 our libmp3lame just encoded has well-formed frames by construction (its
input was decoded under `-xerror`); what can go wrong is missing frames (killed, truncated), so
counting the demuxer's packets (`-count_packets`: one per frame, header frame excluded, the length
header never trusted) is as exact and ~30x cheaper (0.01 s instead of 0.3 s for 10 minutes).
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vid2mp3.convert import failures
from vid2mp3.convert.failures import Transient
from vid2mp3.convert.runner import RunResult
from vid2mp3.errors import PermanentFailure
from vid2mp3.media.binaries import tool_env

TOLERANCE_S = 0.5
MEASURE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Mp3Facts:
    duration_s: float  # decoded: frames x samples per frame / sample rate
    frames: int
    sample_rate: int
    codec: str


def samples_per_frame(sample_rate: int) -> int:
    """MPEG-1 Layer III frames (32, 44.1, 48 kHz) hold 1152 samples; MPEG-2/2.5 (lower rates) 576."""
    return 1152 if sample_rate >= 32000 else 576


def measure_mp3(path: Path, *, ffprobe: str, timeout_s: float = MEASURE_TIMEOUT_S,
                decode: bool = True) -> Mp3Facts | None:
    """Count the frames of the first audio stream of `path`; None when there is none to count.

    `decode`: count the frames that decode (for copied streams); else the demuxed packets (for what
    libmp3lame wrote).
    """
    counted = "frames" if decode else "packets"
    cmd = [
        ffprobe, "-hide_banner", "-v", "error",
        "-protocol_whitelist", "file", "-f", "mp3",
        f"-count_{counted}", "-select_streams", "a:0",
        "-show_entries", f"stream=codec_name,sample_rate,nb_read_{counted}",
        "-of", "json", f"file:{path}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
                              env=tool_env())
    except subprocess.TimeoutExpired:
        raise Transient("measuring the MP3 took too long") from None
    if done.returncode != 0:
        return None
    try:
        streams = json.loads(done.stdout or b"{}").get("streams") or []
        stream = streams[0]
        rate = int(stream["sample_rate"])
        frames = int(stream[f"nb_read_{counted}"])
        codec = str(stream.get("codec_name") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if rate <= 0 or frames <= 0:
        return None
    return Mp3Facts(frames * samples_per_frame(rate) / rate, frames, rate, codec)


def classify_run(result: RunResult, *, timeout_was_ours: bool) -> None:
    """Raise for an ffmpeg run that did not succeed; return when it exited 0.

    `timeout_was_ours`: the limit that stopped it was the one derived from the duration (a file that
    converts far slower than it plays is refused), not the end of this invocation (then it is retried).
    """
    if result.timed_out:
        if timeout_was_ours:
            raise failures.permanent(failures.CONVERSION_TIMEOUT)
        raise Transient(f"the invocation ran out of time after {result.elapsed_s:.0f} s of conversion")
    if result.returncode < 0:
        # Killed from outside (out of memory, a stopping sandbox): not the file's fault, as far as we know.
        raise Transient(f"ffmpeg was killed by signal {-result.returncode}")
    if result.returncode != 0:
        if "No space left on device" in result.stderr:
            raise Transient("the temporary directory is full")
        raise failures.permanent(failures.UNDECODABLE)


def check_output(facts: Mp3Facts | None, expected_s: float, *, tolerance_s: float = TOLERANCE_S) -> Mp3Facts:
    """The measured MP3 when it matches `expected_s`; else the permanent failure that describes it."""
    if facts is None or facts.codec != "mp3":
        raise failures.permanent(failures.UNDECODABLE)
    if not math.isfinite(facts.duration_s) or facts.duration_s < expected_s - tolerance_s:
        raise PermanentFailure(
            failures.TRUNCATED,
            f"{failures.MESSAGES[failures.TRUNCATED]} (got {facts.duration_s:.1f} s of {expected_s:.1f} s)",
        )
    if facts.duration_s > expected_s + tolerance_s:
        raise PermanentFailure(
            failures.DURATION_MISMATCH,
            f"{failures.MESSAGES[failures.DURATION_MISMATCH]} ({facts.duration_s:.1f} s, "
            f"declared {expected_s:.1f} s)",
        )
    return facts
