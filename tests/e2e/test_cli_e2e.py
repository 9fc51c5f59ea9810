"""The installed `vid2mp3` command (the venv's console script, from `pip install -e .[dev]`), run as a
user runs it against the deployed stack: register and log in, convert two videos with one interrupted
mid-upload (SIGINT) and resumed by the same command, a file that is not a video and a conversion that
fails (one line each, exit 1), list, rm, --json parsed, and a progress bar on a terminal. Each test has
its own config directory (XDG_CONFIG_HOME)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra import procs
from tests.support.api import PASSWORD, new_email
from tests.support.media import large_video, layer_binaries

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VID2MP3 = Path(sys.executable).parent / "vid2mp3"  # the installed console script
AUDIO_S = 200  # at 320k an 8 MB MP3: too large for one response, so it comes through the storage link
TOLERANCE_S = 0.5
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-media")
    ffmpeg, _ = layer_binaries()

    def ff(name: str, *args: str) -> Path:
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(d / name)],
                       check=True, timeout=120)
        return d / name

    video = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=15"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    whole = ff("whole.mp4", *video, *tone, "-t", "6", *h264, "-movflags", "+faststart")
    cut = d / "cut short.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a whole index, half the data
    notes = d / "notes.mp4"
    notes.write_text("This is a text file, renamed .mp4.\n" * 20)
    playlist = d / "playlist.mp4"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    return {
        # tens of MB, so that the upload lasts long enough to be interrupted
        "holiday.mkv": large_video(d / "holiday.mkv", seconds=AUDIO_S, megabytes=80),
        "clip.mp4": ff("clip.mp4", *video, *tone, "-t", "3", *h264, "-shortest"),
        "cut short.mp4": cut,
        "notes.mp4": notes,
        "playlist.mp4": playlist,
    }


class User:
    """A user of the command line: their own config directory, the API from VID2MP3_API."""

    def __init__(self, home: Path, api_url: str) -> None:
        self.home = home
        self.email = new_email()
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "VID2MP3_API": api_url,
                    "PYTHONWARNINGS": "error"}  # a warning would be a defect too

    def run(self, *args: str, stdin: str = "", cwd: Path | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VID2MP3), *args], input=stdin, capture_output=True, text=True,
                              cwd=cwd or self.home, env=env or self.env, timeout=TIMEOUT_S, check=False)

    def json(self, *args: str) -> dict:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def registered(self) -> User:
        result = self.run("register", self.email, stdin=PASSWORD + "\n")
        assert result.returncode == 0, result.stderr
        return self


@pytest.fixture
def user(tmp_path: Path, api_url: str) -> User:
    return User(tmp_path, api_url)


def failure_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("vid2mp3:")]


def audio_seconds(path: Path) -> float:
    _, ffprobe = layer_binaries()
    out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of",
                          "json", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    data = json.loads(out)
    return float(data["format"]["duration"])


def mp3_codec(path: Path) -> str:
    _, ffprobe = layer_binaries()
    out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def test_register_finds_the_local_run_and_a_wrong_password_is_one_line(user: User, api_url: str) -> None:
    env = {k: v for k, v in user.env.items() if k != "VID2MP3_API"}
    # from inside the project, the API comes from the .vid2mp3/api-url the running stack wrote
    assert (ROOT / ".vid2mp3" / "api-url").read_text().strip() == api_url
    result = user.run("register", user.email, stdin=PASSWORD + "\n", cwd=ROOT / "tests" / "e2e", env=env)
    assert result.returncode == 0, result.stderr
    assert f"Registered {user.email} and logged in." in result.stdout

    wrong = user.run("login", user.email, stdin="not the password\n")
    assert wrong.returncode == 1
    assert len(failure_lines(wrong.stderr)) == 1 and wrong.stderr.count("\n") == 1, wrong.stderr
    right = user.run("login", user.email, stdin=PASSWORD + "\n")
    assert right.returncode == 0, right.stderr
    credentials = user.home / "config" / "vid2mp3" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert api_url in json.loads(credentials.read_text())


def test_convert_two_videos_one_interrupted_and_resumed_then_list_and_rm(user: User, media: dict[str, Path]) -> None:
    user.registered()
    holiday, clip = media["holiday.mkv"], media["clip.mp4"]
    command = ["convert", str(holiday), str(clip), "--bitrate", "320k", "--out", "mp3s", "--json"]

    # Ctrl-C once the server has a part or two of the large file
    seen: list[str] = []
    with subprocess.Popen([str(VID2MP3), *command], cwd=user.home, env=user.env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("holiday.mkv: uploaded ") and "%" in line:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == 130, (seen, rest)
    assert "run the same command again to continue where it stopped" in rest
    assert "Traceback" not in rest

    again = user.run(*command)  # the same command
    assert again.returncode == 0, again.stderr
    results = {Path(r["file"]).name: r for r in json.loads(again.stdout)["results"]}
    size = holiday.stat().st_size
    assert 0 < results["holiday.mkv"]["resumed_from"] < size, results  # it continued, it did not start over
    assert "holiday.mkv: resuming the upload at" in again.stderr
    assert results["clip.mp4"]["resumed_from"] is None
    for name, source_s in (("holiday.mkv", AUDIO_S), ("clip.mp4", 3.0)):
        result = results[name]
        assert result["status"] == "done" and result["error"] is None, result
        mp3 = user.home / result["mp3"]
        assert mp3 == user.home / "mp3s" / (Path(name).stem + ".mp3")
        assert mp3.stat().st_size == result["mp3_size"]
        assert mp3_codec(mp3) == "mp3"
        assert abs(audio_seconds(mp3) - source_s) <= TOLERANCE_S, name
    assert results["holiday.mkv"]["mp3_size"] > 4 * 1024 * 1024  # it came through the storage link

    ids = {results[n]["job_id"] for n in results}
    listed = user.json("list")["items"]
    assert {j["id"] for j in listed} == ids  # one job per file: the interrupted upload was not made twice
    assert {j["size"] for j in listed} == {size, clip.stat().st_size}
    assert all(j["status"] == "done" and j["bitrate"] == "320k" for j in listed)

    assert user.json("rm", *sorted(ids)) == {"removed": sorted(ids)}
    assert user.json("list") == {"items": []}
    gone = user.run("status", next(iter(ids)))
    assert gone.returncode == 1 and len(failure_lines(gone.stderr)) == 1


def test_files_that_are_not_videos_and_a_failed_conversion_are_one_clear_line_each(
        user: User, media: dict[str, Path]) -> None:
    """A playlist is refused at its first part (415), a text file once all of it is there (a failed job),
    a video cut short by the conversion (a failed job): the same one line each, in words."""
    user.registered()
    names = ["playlist.mp4", "notes.mp4", "cut short.mp4"]
    result = user.run("convert", *(str(media[n]) for n in names))
    assert result.returncode == 1
    lines = failure_lines(result.stderr)
    assert len(lines) == 3, result.stderr
    for name, line in zip(names, lines, strict=True):
        prefix = f"vid2mp3: {name}: not converted: "
        assert line.startswith(prefix) and len(line) > len(prefix) + 15, line  # the reason, in words
    assert result.stdout == ""
    failed = user.json("list")["items"]
    assert sorted(j["filename"] for j in failed) == ["cut short.mp4", "notes.mp4"]  # the playlist left nothing
    assert all(j["status"] == "failed" for j in failed)


def test_the_api_not_answering_is_exit_3(user: User) -> None:
    result = user.run("--api", f"http://127.0.0.1:{procs.free_port()}/v1", "login", user.email,
                      stdin=PASSWORD + "\n")
    assert result.returncode == 3
    assert len(failure_lines(result.stderr)) == 1 and "Could not reach the API" in result.stderr


def run_on_a_terminal(command: list[str], env: dict[str, str], cwd: Path,
                      until: Callable[[str], bool] = lambda _: False) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal as its standard input, output and error; what it showed."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(command, stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "140"}, close_fds=True)
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), shown.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)


def test_on_a_terminal_convert_shows_a_progress_bar_and_where_the_mp3_went(user: User,
                                                                           media: dict[str, Path]) -> None:
    user.registered()
    code, shown = run_on_a_terminal([str(VID2MP3), "convert", str(media["clip.mp4"])], user.env, user.home)
    assert code == 0, shown
    assert "━" in shown and "clip.mp4" in shown  # rich's bar
    assert "100%" in shown and "done" in shown
    assert "clip.mp4 -> clip.mp3" in shown.replace("\r", "")
    assert (user.home / "clip.mp3").stat().st_size > 0
