"""Upload -> convert -> download on the deployed template, over HTTP like a user.

The upload function publishes the job's message; the bridge (locally) invokes the convert function with
the `aws:rmq` event; the MP3 is then fetched through API Gateway and played back with the ffmpeg layer's
ffmpeg: it must last as long as the source's audio. Media is generated here with that ffmpeg.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Account, Api
from tests.support.apigw import multipart_body
from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / ".vid2mp3" / "build" / "layers" / "ffmpeg"
# The first conversion pays the convert worker's cold start and the bridge's batching window.
CONVERT_TIMEOUT_S = 180.0
TOLERANCE_S = 0.5


def binaries() -> tuple[str, str]:
    env = {LAYERS_DIRS_ENV: str(LAYER), "PATH": ""}
    return find_ffmpeg(None, env, opt_dir="/nonexistent"), find_ffprobe(None, env, opt_dir="/nonexistent")


def media_maker(directory: Path) -> Callable[..., Path]:
    """`ff(name, *ffmpeg args)` writes `directory/name` with the layer's ffmpeg and returns its path."""
    ffmpeg, _ = binaries()

    def ff(name: str, *args: str) -> Path:
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args,
                        str(directory / name)], check=True, timeout=120)
        return directory / name

    return ff


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("convert-e2e-media")
    ff = media_maker(d)

    video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100,aformat=channel_layouts=stereo"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    found = {
        "holiday.mp4": ff("holiday.mp4", *video, *tone, "-t", "5", *h264, "-c:a", "aac"),  # moov at the end
        "concert.mkv": ff("concert.mkv", *video, *tone, "-t", "4", *h264, "-c:a", "libmp3lame", "-b:a", "128k"),
    }
    whole = ff("whole.mp4", *video, *tone, "-t", "6", *h264, "-c:a", "aac", "-movflags", "+faststart")
    cut = d / "cut short.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the index is whole, the data half
    found["cut short.mp4"] = cut
    return found


class User(Account):
    finish_timeout_s = CONVERT_TIMEOUT_S

    def upload(self, path: Path, **fields: str) -> dict[str, Any]:
        body, ctype = multipart_body(path.read_bytes(), filename=path.name, fields=fields or None)
        reply = self.call("POST", "/videos", raw=body, headers={"Content-Type": ctype})
        assert reply.status == 202, reply.raw
        assert reply.body["status"] == "queued"
        return dict(reply.body)


@pytest.fixture(scope="module")
def user(api_url: str) -> User:
    return User(Api(api_url))


def played_seconds(path: Path) -> float:
    """Decode the whole MP3 with the layer's ffmpeg: how long it plays."""
    ffmpeg, _ = binaries()
    out = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null",
                          "-progress", "pipe:1", "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    return max(int(line.split("=", 1)[1]) for line in out.splitlines()
               if line.startswith("out_time_us=") and line.split("=", 1)[1].isdigit()) / 1e6


def audio_seconds(path: Path) -> float:
    _, ffprobe = binaries()
    out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=duration:stream_tags=DURATION:format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    data = json.loads(out)
    stream = data["streams"][0]
    if stream.get("duration") not in (None, "N/A"):
        return float(stream["duration"])
    return float(data["format"]["duration"])


@pytest.mark.parametrize(("name", "bitrate"), [("holiday.mp4", "128k"), ("concert.mkv", None)])
def test_upload_convert_download_plays_for_the_source_length(user: User, media: dict[str, Path], tmp_path: Path,
                                                             name: str, bitrate: str | None) -> None:
    job = user.upload(media[name], **({"bitrate": bitrate} if bitrate else {}))

    finished = user.wait_finished(job["id"])
    assert finished["status"] == "done", finished
    assert set(finished["mp3"]) == {"size", "duration_s", "bitrate"}
    assert abs(finished["mp3"]["duration_s"] - audio_seconds(media[name])) <= TOLERANCE_S
    assert finished["mp3"]["bitrate"] == (bitrate or "128k")  # the MKV's MP3 audio is copied as it is

    reply = user.call("GET", f"/videos/{job['id']}/mp3", headers={"Accept": "audio/mpeg"})
    assert reply.status == 200, reply.raw[:300]
    assert reply.headers.get("Content-Type", "").startswith("audio/mpeg")
    assert len(reply.raw) == finished["mp3"]["size"]
    disposition = urllib.parse.unquote(reply.headers.get("Content-Disposition", ""))
    assert Path(name).stem in disposition
    mp3 = tmp_path / "download.mp3"
    mp3.write_bytes(reply.raw)
    assert abs(played_seconds(mp3) - audio_seconds(media[name])) <= TOLERANCE_S


def test_a_file_cut_short_fails_with_a_reason(user: User, media: dict[str, Path]) -> None:
    job = user.upload(media["cut short.mp4"])  # the upload's probe sees a whole index and accepts it

    finished = user.wait_finished(job["id"])
    assert finished["status"] == "failed", finished
    assert finished["error"]["code"] == "truncated" and finished["error"]["message"]
    reply = user.call("GET", f"/videos/{job['id']}/mp3", headers={"Accept": "audio/mpeg"})
    assert reply.status == 409 and reply.error_code() == "conversion_failed", reply.raw
