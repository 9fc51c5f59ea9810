"""The ffmpeg command: every restriction of the design brief is in it (no ffmpeg runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vid2mp3.convert.plan import Plan, demuxer_name, kbps_label, plan_conversion, title_from_filename
from vid2mp3.media.probe import AudioStream, MediaInfo


def info(codec: str = "aac", *, fmt: str = "mov,mp4,m4a,3gp,3g2,mj2", duration: float = 10.0,
         audio_duration: float | None = 9.5, bit_rate: int | None = 128_000) -> MediaInfo:
    return MediaInfo(format_name=fmt, duration_s=duration, has_video=True,
                     audio=(AudioStream(1, codec, 2, 44100, audio_duration, bit_rate),))


def plan(media: MediaInfo, **kw: Any) -> Plan:
    args: dict[str, Any] = {
        "ffmpeg": "/layer/bin/ffmpeg", "source": Path("/tmp/w/source"), "output": Path("/tmp/w/audio.mp3"),
        "bitrate": "192k", "filename": "My Holiday.mp4", "max_duration_s": 10800.0,
    } | kw
    return plan_conversion(media, **args)


def option(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_reencode_plan_has_every_guard() -> None:
    p = plan(info())
    argv = p.argv
    assert argv[0] == "/layer/bin/ffmpeg"
    assert {"-nostdin", "-xerror", "-vn", "-sn", "-dn"} <= set(argv)
    assert option(argv, "-protocol_whitelist") == "file,pipe"
    # input options come before -i: forced demuxer, the cap
    i = argv.index("-i")
    assert argv[i + 1] == "file:/tmp/w/source"
    assert argv.index("-f") < i and option(argv, "-f") == "mov"
    assert argv.index("-t") < i and float(option(argv, "-t")) == 10800.0
    assert option(argv, "-map") == "0:a:0"
    assert option(argv, "-map_metadata") == "-1"
    assert option(argv, "-c:a") == "libmp3lame" and option(argv, "-b:a") == "192k"
    assert "-q:a" not in argv and "-vbr" not in argv  # CBR
    assert option(argv, "-id3v2_version") == "3"
    assert option(argv, "-metadata") == "title=My Holiday"
    assert option(argv, "-progress") == "pipe:1"
    assert argv[-4:] == ("-f", "mp3", "-y", "file:/tmp/w/audio.mp3")
    assert not p.copy and p.bitrate == "192k" and p.expected_duration_s == 9.5


def test_mp3_audio_is_copied() -> None:
    p = plan(info("mp3", fmt="matroska,webm", bit_rate=None))
    assert p.copy and option(p.argv, "-c:a") == "copy" and "-b:a" not in p.argv
    assert option(p.argv, "-f") == "matroska"
    assert p.bitrate == ""  # measured from the output later
    assert plan(info("mp3", bit_rate=320_000)).bitrate == "320k"


def test_expected_duration_falls_back_to_the_container_and_is_capped() -> None:
    assert plan(info(audio_duration=None, duration=12.0)).expected_duration_s == 12.0
    assert plan(info(audio_duration=99.0), max_duration_s=60.0).expected_duration_s == 60.0


@pytest.mark.parametrize("bitrate", ["192", "192K ", "-b:a", "1000k", ""])
def test_bitrate_is_validated(bitrate: str) -> None:
    with pytest.raises(ValueError, match="bitrate"):
        plan(info(), bitrate=bitrate)


@pytest.mark.parametrize(
    ("filename", "title"),
    [
        ("holiday.mp4", "holiday"),
        ("C:\\Users\\ann\\clip.final.mov", "clip.final"),
        ("../../etc/passwd", "passwd"),
        (".hidden", ".hidden"),
        ("no extension", "no extension"),
        ("tab\tand\nnewline\u202e.mkv", "tab and newline"),
        ("-f lavfi.mp4", "-f lavfi"),
        ("", "audio"),
        ("x" * 500 + ".mp4", "x" * 200),
        ("Ünïcødé 日本.webm", "Ünïcødé 日本"),
    ],
)
def test_title_from_filename(filename: str, title: str) -> None:
    assert title_from_filename(filename) == title


def test_title_is_one_argument_whatever_the_name() -> None:
    p = plan(info(), filename="a=b -i evil; rm -rf ~.mp4")
    assert option(p.argv, "-metadata") == "title=a=b -i evil; rm -rf ~"
    assert p.argv.count("-i") == 1


def test_demuxer_name_and_kbps() -> None:
    assert demuxer_name("mov,mp4,m4a,3gp,3g2,mj2") == "mov"
    assert demuxer_name("wav") == "wav"
    assert kbps_label(191_987) == "192k"
    assert kbps_label(10) == "1k"


def test_streamed_input_keeps_every_guard() -> None:
    p = plan(info(fmt="matroska,webm"), source=None)
    argv = p.argv
    i = argv.index("-i")
    assert argv[i + 1] == "pipe:0"
    assert option(argv, "-protocol_whitelist") == "file,pipe" and argv.index("-protocol_whitelist") < i
    assert option(argv, "-f") == "matroska" and argv.index("-f") < i  # forced, never guessed from a pipe
    assert {"-xerror", "-nostdin"} <= set(argv) and argv.index("-t") < i
    assert argv[-1] == "file:/tmp/w/audio.mp3"  # the output stays a file: its length header is written
