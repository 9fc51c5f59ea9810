"""What a player plays of a file: decoded with the ffmpeg layer's ffmpeg, independently of the converter's
own verification (vid2mp3.convert.verify counts packets; this decodes every sample)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Played:
    seconds: float  # decoded samples / sample rate
    channels: int
    levels_db: tuple[float, ...]  # RMS level of each channel (-inf: silent)


def played(ffmpeg: str, ffprobe: str, path: Path) -> Played:
    """Decode the first audio stream of `path` (an MP3) to the end."""
    probe = json.loads(subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels,sample_rate",
         "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout)
    stream = probe["streams"][0]
    channels, rate = int(stream["channels"]), int(stream["sample_rate"])
    decoded = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-v", "info", "-i", str(path), "-map", "0:a:0",
         "-af", "astats=measure_overall=none:measure_perchannel=RMS_level", "-f", "s16le", "-"],
        capture_output=True, check=True, timeout=120)
    levels = tuple(float(v) for v in re.findall(rb"RMS level dB: (-?inf|-?[\d.]+)", decoded.stderr))
    return Played(len(decoded.stdout) / 2 / channels / rate, channels, levels[-channels:])
