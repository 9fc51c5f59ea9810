"""The command line against an in-memory API (tests/support/fake_api.py): what a user sees and the exit
codes, for each command; the e2e tier runs the installed command against the deployed stack."""

from __future__ import annotations

import io
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_api import API, PART, FakeApi
from vid2mp3.cli import tus
from vid2mp3.cli.commands import convert, jobs
from vid2mp3.cli.main import main

PASSWORD = "correct horse battery staple"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Cli:
    def __init__(self, fake: FakeApi, home: Path) -> None:
        self.fake, self.home = fake, home

    def __call__(self, *argv: str, stdin: str = "") -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), transport=self.fake.transport, stdin=io.StringIO(stdin), stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())

    def logged_in(self, email: str = "alice@example.com") -> Cli:
        assert self("register", email, stdin=PASSWORD + "\n").code == 0
        return self


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VID2MP3_API", API)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tus, "FIRST_DELAY_S", 0.0)
    monkeypatch.setattr(convert, "POLL_S", 0.0)
    return Cli(FakeApi(), tmp_path)


def video(path: Path, size: int, head: bytes = b"\x1aE\xdf\xa3") -> Path:
    path.write_bytes(head + bytes(range(256)) * ((size - len(head)) // 256) + b"\0" * ((size - len(head)) % 256))
    return path


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# --- accounts ------------------------------------------------------------------------------------


def test_register_reads_the_password_from_stdin_and_keeps_the_token_for_the_user_alone(cli):
    result = cli("register", "alice@example.com", stdin=PASSWORD + "\n")
    assert result.code == 0, result.err
    assert "alice@example.com" in result.out
    assert cli.fake.users == {"alice@example.com": PASSWORD}
    credentials = cli.home / "config" / "vid2mp3" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    kept = json.loads(credentials.read_text())[API]
    assert kept["email"] == "alice@example.com" and kept["token"] in cli.fake.tokens


def test_login_with_a_wrong_password_is_one_line_and_exit_1(cli):
    cli.logged_in()
    result = cli("login", "alice@example.com", stdin="wrong password\n")
    assert result.code == 1
    assert one_line(result.err) == "vid2mp3: Wrong email or password."


def test_login_json_and_the_token_is_never_printed(cli):
    cli.logged_in()
    result = cli("login", "alice@example.com", "--json", stdin=PASSWORD + "\n")
    assert result.code == 0
    assert result.json()["email"] == "alice@example.com"
    assert not any(token in result.out + result.err for token in cli.fake.tokens)


def test_no_password_on_stdin_is_a_usage_error(cli):
    result = cli("login", "alice@example.com", stdin="")
    assert result.code == 2 and "No password given" in one_line(result.err)


def test_commands_before_login_say_how_to_log_in(cli):
    result = cli("list")
    assert result.code == 1 and "vid2mp3 login EMAIL" in one_line(result.err)


def test_an_expired_login_asks_to_log_in_again(cli):
    cli.fake.expires_in = 30  # within the margin: as good as expired
    cli.logged_in()
    result = cli("list")
    assert result.code == 1
    assert one_line(result.err) == ("vid2mp3: Your login as alice@example.com has expired: log in again "
                                    "(vid2mp3 login alice@example.com).")


def test_a_token_the_api_no_longer_accepts_asks_to_log_in_again(cli):
    cli.logged_in()
    cli.fake.tokens.clear()  # e.g. the signing key was rotated
    result = cli("list", "--json")
    assert result.code == 1 and "log in again" in one_line(result.err)
    assert result.json() == {"error": {"code": "session_expired", "message": one_line(result.err)[9:]}}


def test_logout_forgets_the_token(cli):
    cli.logged_in()
    assert cli("logout").code == 0
    assert cli("list").code == 1


# --- where the API is -----------------------------------------------------------------------------


def test_no_api_url_anywhere_is_a_usage_error(cli, monkeypatch):
    monkeypatch.delenv("VID2MP3_API")
    result = cli("list")
    assert result.code == 2 and "--api URL" in one_line(result.err)


def test_the_api_cannot_be_reached_exit_3(cli, monkeypatch, tmp_path):
    cli.fake.down = True
    result = cli("register", "alice@example.com", stdin=PASSWORD + "\n")
    assert result.code == 3
    assert one_line(result.err) == f"vid2mp3: Could not reach the API at {API} ([Errno 111] Connection refused)."
    # found through make run's file, it says what to start
    monkeypatch.delenv("VID2MP3_API")
    (tmp_path / ".vid2mp3").mkdir()
    (tmp_path / ".vid2mp3" / "api-url").write_text(API + "\n")
    result = cli("login", "alice@example.com", stdin=PASSWORD + "\n")
    assert result.code == 3 and one_line(result.err).endswith("Is `make run` running?")


def test_argument_errors_exit_2(cli):
    assert cli("convert").code == 2
    assert cli("frobnicate").code == 2
    missing = cli.logged_in()("convert", "no-such.mp4")
    assert missing.code == 2 and one_line(missing.err) == "vid2mp3: no-such.mp4: no such file."


# --- convert ----------------------------------------------------------------------------------------


def test_convert_uploads_in_4_mib_parts_and_writes_the_mp3(cli, tmp_path):
    cli.logged_in()
    clip = video(tmp_path / "holiday.mkv", 9 * 1024 * 1024 + 5)
    result = cli("convert", str(clip), "--bitrate", "320k", "--out", "mp3s")
    assert result.code == 0, result.err
    mp3 = tmp_path / "mp3s" / "holiday.mp3"
    assert result.out.strip() == f"holiday.mkv -> {Path('mp3s') / 'holiday.mp3'} (500 bytes)"
    patches = cli.fake.patches()
    assert [len(p.content) for p in patches] == [PART, PART, 1024 * 1024 + 5]
    (upload,) = cli.fake.uploads.values()
    assert upload.data == clip.read_bytes() and upload.metadata["bitrate"] == "320k"
    assert upload.metadata["filename"] == "holiday.mkv"
    assert mp3.read_bytes() == cli.fake.mp3_of(upload.id)
    assert "holiday.mkv: uploading 9.4 MB" in result.err and "converting" in result.err
    assert not list((cli.home / "config" / "vid2mp3" / "uploads").iterdir())  # finished with


def test_ctrl_c_mid_upload_and_the_same_command_again_continues_where_it_stopped(cli, tmp_path):
    cli.logged_in()
    clip = video(tmp_path / "big.mkv", 3 * PART + 100)
    cli.fake.interrupt_after_parts = 2
    first = cli("convert", str(clip), "--json")
    assert first.code == 130
    assert "run the same command again" in first.err
    (upload,) = cli.fake.uploads.values()
    assert len(upload.data) == 2 * PART

    cli.fake.interrupt_after_parts = None
    sent_before = len(cli.fake.patches())
    second = cli("convert", str(clip), "--json")
    assert second.code == 0, second.err
    (result,) = second.json()["results"]
    assert result["resumed_from"] == 2 * PART and result["status"] == "done"
    assert [int(p.headers["Upload-Offset"]) for p in cli.fake.patches()[sent_before:]] == [2 * PART, 3 * PART]
    assert len(cli.fake.uploads) == 1 and upload.data == clip.read_bytes()
    assert Path(result["mp3"]).read_bytes() == cli.fake.mp3_of(upload.id)


def test_a_changed_file_is_a_new_upload(cli, tmp_path):
    cli.logged_in()
    clip = video(tmp_path / "clip.mkv", PART + 10)
    cli.fake.interrupt_after_parts = 1
    assert cli("convert", str(clip)).code == 130
    cli.fake.interrupt_after_parts = None
    video(clip, PART + 20)
    result = cli("convert", str(clip), "--json")
    assert result.code == 0 and result.json()["results"][0]["resumed_from"] is None
    assert len(cli.fake.uploads) == 2


def test_an_expired_upload_starts_again(cli, tmp_path):
    cli.logged_in()
    clip = video(tmp_path / "clip.mkv", PART + 10)
    cli.fake.interrupt_after_parts = 1
    assert cli("convert", str(clip)).code == 130
    cli.fake.interrupt_after_parts = None
    cli.fake.uploads.clear()  # swept by the server
    result = cli("convert", str(clip), "--json")
    assert result.code == 0 and result.json()["results"][0]["status"] == "done"


def test_passing_failures_of_a_part_are_retried(cli, tmp_path):
    cli.logged_in()
    cli.fake.fail_patches = 2
    result = cli("convert", str(video(tmp_path / "clip.mkv", PART + 10)))
    assert result.code == 0, result.err
    assert len(cli.fake.patches()) == 4


def test_a_refused_file_and_a_failed_conversion_are_one_line_each_and_the_others_convert(cli, tmp_path):
    cli.logged_in()
    good = video(tmp_path / "good.mkv", 2000)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text("#EXTM3U\nfile:///etc/passwd\n")
    broken = video(tmp_path / "broken.mp4", 3000)
    result = cli("convert", str(playlist), str(good), str(broken))
    assert result.code == 1
    assert result.out.strip() == "good.mkv -> good.mp3 (500 bytes)"
    failures = [line for line in result.err.splitlines() if line.startswith("vid2mp3:")]
    assert failures == ["vid2mp3: playlist.mp4: not converted: The file is a playlist, not a video.",
                        "vid2mp3: broken.mp4: not converted: The video is cut short."]
    assert "Traceback" not in result.err


def test_convert_json_results(cli, tmp_path):
    cli.logged_in()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = cli("convert", str(video(tmp_path / "a.mkv", 1000)), str(empty), "--json", "--out", "out")
    assert result.code == 1
    a, e = result.json()["results"]
    assert a["status"] == "done" and a["mp3"] == str(Path("out") / "a.mp3") and a["mp3_size"] == 500
    assert a["job_id"] in cli.fake.jobs
    assert e["status"] == "failed" and e["error"] == {"code": "empty_file", "message": "The file is empty."}


def test_a_bad_bitrate_is_a_usage_error(cli, tmp_path):
    cli.logged_in()
    result = cli("convert", str(video(tmp_path / "a.mkv", 1000)), "--bitrate", "1000k")
    assert result.code == 2 and "bitrate" in one_line(result.err)


def test_no_wait_uploads_and_says_how_to_follow(cli, tmp_path):
    cli.logged_in()
    result = cli("convert", str(video(tmp_path / "a.mkv", 1000)), "--no-wait")
    assert result.code == 0
    (job_id,) = cli.fake.jobs
    assert f"vid2mp3 status {job_id}" in result.out
    assert cli.fake.jobs[job_id]["status"] == "queued"


def test_mp3s_never_overwrite_a_file(cli, tmp_path):
    cli.logged_in()
    (tmp_path / "a.mp3").write_text("mine")
    result = cli("convert", str(video(tmp_path / "a.mkv", 1000)))
    assert result.code == 0
    assert (tmp_path / "a.mp3").read_text() == "mine" and (tmp_path / "a (2).mp3").stat().st_size == 500


# --- list, status, download, rm ----------------------------------------------------------------------


def test_list_status_download_and_rm(cli, tmp_path):
    cli.logged_in()
    assert cli("convert", str(video(tmp_path / "a.mkv", 1000)), str(video(tmp_path / "b.mkv", 1000)),
               "--out", "first").code == 0
    items = cli("list", "--json").json()["items"]
    assert sorted(i["filename"] for i in items) == ["a.mkv", "b.mkv"]
    table = cli("list").out
    assert all(i["id"] in table for i in items) and "MP3 500 bytes" in table

    job_id = items[0]["id"]
    status = cli("status", job_id, "--json")
    assert status.code == 0 and status.json()["status"] == "done"
    assert f"vid2mp3 download {job_id}" in cli("status", job_id).out

    downloaded = cli("download", job_id, "-o", "mine.mp3", "--json")
    assert downloaded.code == 0 and downloaded.json()["path"] == "mine.mp3"
    assert (tmp_path / "mine.mp3").read_bytes() == cli.fake.mp3_of(job_id)

    removed = cli("rm", job_id, "--json")
    assert removed.code == 0 and removed.json() == {"removed": [job_id]}
    gone = cli("status", job_id)
    assert gone.code == 1 and one_line(gone.err) == "vid2mp3: No such video."


def test_status_of_a_failed_job_gives_the_reason_and_exit_1(cli, tmp_path):
    cli.logged_in()
    assert cli("convert", str(video(tmp_path / "broken.mkv", 1000))).code == 1
    (job_id,) = cli.fake.jobs
    result = cli("status", job_id)
    assert result.code == 1 and "failed:   The video is cut short." in result.out


def test_list_follows_every_page(cli, tmp_path, monkeypatch):
    cli.logged_in()
    files = [str(video(tmp_path / f"v{i}.mkv", 500 + i)) for i in range(3)]
    assert cli("convert", *files, "--no-wait").code == 0
    monkeypatch.setattr(jobs, "PAGE", "2")
    assert len(cli("list", "--json").json()["items"]) == 3


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_an_expired_login_asks_for_the_password_and_carries_on(cli, monkeypatch):
    cli.fake.expires_in = 30
    cli.logged_in()
    cli.fake.expires_in = 3600
    asked: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    out, err = io.StringIO(), io.StringIO()
    code = main(["list", "--json"], transport=cli.fake.transport, stdin=Terminal(), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert asked == ["Password for alice@example.com: "]
    assert "has expired" in err.getvalue() and json.loads(out.getvalue()) == {"items": []}
    assert cli("list").code == 0  # the new login was kept


def test_register_on_a_terminal_asks_twice_and_two_different_passwords_are_a_usage_error(cli, monkeypatch):
    answers = iter([PASSWORD, "something else"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    err = io.StringIO()
    code = main(["register", "bob@example.com"], transport=cli.fake.transport, stdin=Terminal(),
                stdout=io.StringIO(), stderr=err)
    assert code == 2 and one_line(err.getvalue()) == "vid2mp3: The two passwords differ."
    assert cli.fake.users == {}
