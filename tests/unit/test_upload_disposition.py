"""Content-Disposition for the MP3 download (RFC 6266 / RFC 8187) and byte ranges."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from vid2mp3.errors import RangeNotSatisfiable
from vid2mp3.jobs.disposition import content_disposition, mp3_filename
from vid2mp3.jobs.ranges import parse_range

HEADER = re.compile(r"^attachment; filename=\"([\x20-\x7e]*)\"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$")


@pytest.mark.parametrize(("original", "fallback", "utf8"), [
    ("Café del Mar.mp4", "Cafe del Mar.mp3", "Café del Mar.mp3"),
    ("clip.final.MP4", "clip.final.mp3", "clip.final.mp3"),
    ("no extension", "no extension.mp3", "no extension.mp3"),
    ("日本語の動画.mkv", "audio.mp3", "日本語の動画.mp3"),
    ("../../etc/passwd", "passwd.mp3", "passwd.mp3"),
    ("C:\\Users\\me\\v.avi", "v.mp3", "v.mp3"),
    ('say "hi"\r\nSet-Cookie: x=1.mov', "say hi Set-Cookie x=1.mp3", "say hi Set-Cookie x=1.mp3"),
    ("100% fun.webm", "100 fun.mp3", "100 fun.mp3"),
    ("", "audio.mp3", "audio.mp3"),
    (".mp4", "audio.mp3", "audio.mp3"),
    ("tab\there.mp4", "tab here.mp3", "tab here.mp3"),
])
def test_content_disposition(original, fallback, utf8):
    value = content_disposition(original)
    m = HEADER.match(value)
    assert m, value
    assert m.group(1) == fallback
    assert unquote(m.group(2), encoding="utf-8", errors="strict") == utf8


def test_long_names_are_cut():
    name = mp3_filename("é" * 1000 + ".mp4")
    assert name.endswith(".mp3") and len(name) <= 154


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=90-1000", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    ("BYTES = 5 - 6", 100, (5, 6)),
    ("bytes=9-5", 100, None),  # invalid: ignored
    ("bytes=0-1,5-6", 100, None),  # several: the whole file
    ("items=0-5", 100, None),
    ("bytes=-", 100, None),
    ("bytes=abc", 100, None),
])
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable) as exc:
        parse_range(header, 100)
    assert exc.value.size == 100
