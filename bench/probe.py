"""The upload's probe on 2-hour files whose header states no duration, or one to distrust (issue 11).

    python bench/probe.py [--repeat N]

Generates once (cached under .vid2mp3/bench/media/) a 2-hour 64x48 H.264 + AAC recording with the ffmpeg
layer's ffmpeg and remuxes it the way live tools write it: Matroska written to a pipe (no duration, no
cues: MediaRecorder's layout), fragmented MP4 (empty moov), live FLV, MPEG-TS and AVI. For each it reports
the probe (vid2mp3.media.probe.probe: ffprobe, track choice, the audio's end measured from its last
packets) against a bare `ffprobe -show_format -show_streams` of the same file in the same run, and the
goal: at most 2 s for a 2-hour file. Each figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEDIA = ROOT / ".vid2mp3" / "bench" / "media"
LAYER = ROOT / ".vid2mp3" / "build" / "layers" / "ffmpeg"
SECONDS = 7200
GOAL_S = 2.0
REMUX = {  # name: ffmpeg output options (the source is copied, never re-encoded)
    "live.mkv": ["-f", "matroska", "pipe:1"],  # through a pipe: no cues, no duration, unknown sizes
    "fragmented.mp4": ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"],
    "live.flv": ["-flvflags", "no_duration_filesize", "-f", "flv"],
    "broadcast.ts": ["-bsf:v", "h264_mp4toannexb", "-f", "mpegts"],
    "camera.avi": ["-bsf:v", "h264_mp4toannexb", "-f", "avi"],
}


def binaries() -> tuple[str, str]:
    from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe

    if not (LAYER / "bin" / "ffmpeg").exists():
        subprocess.run([sys.executable, str(ROOT / "layers" / "ffmpeg" / "build.py")], check=True)
    env = {LAYERS_DIRS_ENV: str(LAYER), "PATH": ""}
    return find_ffmpeg(None, env, opt_dir="/nonexistent"), find_ffprobe(None, env, opt_dir="/nonexistent")


def media(ffmpeg: str) -> dict[str, Path]:
    MEDIA.mkdir(parents=True, exist_ok=True)
    source = MEDIA / "2h-source.mkv"
    if not source.exists():
        print("generating a 2-hour source (a few minutes, once) ...", flush=True)
        partial = source.with_suffix(".partial.mkv")
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=5:duration={SECONDS}",
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=22050:duration={SECONDS}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", "-b:a", "32k",
                        str(partial)], check=True)
        partial.rename(source)
    out: dict[str, Path] = {}
    for name, args in REMUX.items():
        path = MEDIA / f"2h-{name}"
        out[name] = path
        if path.exists():
            continue
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(source), "-c", "copy", *args]
        if args[-1] == "pipe:1":
            with open(path, "wb") as f:
                subprocess.run(cmd, stdout=f, check=True)
        else:
            subprocess.run([*cmd, str(path)], check=True)
    return out


def timed(fn: object, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from vid2mp3.media.probe import probe, run_ffprobe

    ffmpeg, ffprobe = binaries()
    files = media(ffmpeg)
    print(f"{'file':16} {'size':>9} {'ffprobe':>9} {'probe':>9} {'ratio':>6} {'audio s':>9}  goal <= {GOAL_S:.0f} s")
    worst = 0.0
    for name, path in files.items():
        bare, _ = timed(lambda p=path: run_ffprobe(p, ffprobe=ffprobe), args.repeat)
        took, info = timed(lambda p=path: probe(p, ffprobe=ffprobe, max_duration_s=3 * 3600.0), args.repeat)
        worst = max(worst, took)
        audio_s = info.audio_duration_s  # type: ignore[attr-defined]
        print(f"{name:16} {path.stat().st_size / 2**20:7.0f}Mi {bare:8.3f}s {took:8.3f}s {took / bare:6.2f} "
              f"{audio_s:9.1f}  {'ok' if took <= GOAL_S and abs(audio_s - SECONDS) < 1 else 'MISSED'}")
    print(f"slowest probe {worst:.3f} s: {'ok' if worst <= GOAL_S else 'MISSED'}")
    return 0 if worst <= GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
