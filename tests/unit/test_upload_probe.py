"""The probe's rules on ffprobe's JSON (no ffprobe needed here; the integration tier runs the real one)."""

from __future__ import annotations

import pytest

from vid2mp3.errors import Unprocessable, UnsupportedMedia
from vid2mp3.media import probe as probe_mod
from vid2mp3.media.probe import ALLOWED_DEMUXERS, check_media, parse_ffprobe


def ffprobe_json(format_name="mov,mp4,m4a,3gp,3g2,mj2", duration="12.5", streams=None):
    fmt = {"format_name": format_name, "bit_rate": "128000"}
    if duration is not None:
        fmt["duration"] = duration
    if streams is None:
        streams = [
            {"index": 0, "codec_type": "video", "codec_name": "h264"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000",
             "duration": "12.48", "bit_rate": "128000"},
        ]
    return {"format": fmt, "streams": streams}


def test_accepts_a_video_with_audio():
    info = check_media(ffprobe_json(), max_duration_s=3600)
    assert info.format_name == "mov,mp4,m4a,3gp,3g2,mj2" and info.duration_s == 12.5 and info.has_video
    a = info.audio_stream
    assert (a.index, a.codec, a.channels, a.sample_rate, a.duration_s, a.bit_rate) == (1, "aac", 2, 48000, 12.48,
                                                                                       128000)
    assert info.audio_duration_s == 12.48
    assert info.summary()["audio_codec"] == "aac"


@pytest.mark.parametrize("name", ["hls", "image2", "png_pipe", "concat", "lavfi", "tty", "dash", "srt", ""])
def test_refuses_containers_outside_the_allow_list(name):
    with pytest.raises(UnsupportedMedia) as exc:
        check_media(ffprobe_json(format_name=name), max_duration_s=3600)
    assert exc.value.code == "container_not_allowed"


def test_allow_list_has_the_usual_containers():
    for name in ("matroska,webm", "avi", "flv", "mpegts", "ogg", "wav", "mp3", "flac", "aac", "asf"):
        assert name in ALLOWED_DEMUXERS
        check_media(ffprobe_json(format_name=name), max_duration_s=3600)


def test_no_audio_stream():
    data = ffprobe_json(streams=[{"index": 0, "codec_type": "video", "codec_name": "h264"}])
    with pytest.raises(Unprocessable) as exc:
        check_media(data, max_duration_s=3600)
    assert exc.value.code == "no_audio_stream"


def test_too_long_and_unknown_duration():
    with pytest.raises(Unprocessable) as exc:
        check_media(ffprobe_json(duration="3600.5", streams=[{"codec_type": "audio", "codec_name": "aac"}]),
                    max_duration_s=3600)
    assert exc.value.code == "too_long" and "1 h" in exc.value.message
    # the cap is on the audio's own duration: a header claiming an hour does not refuse 12 s of audio
    assert check_media(ffprobe_json(duration="3600.5"), max_duration_s=3600).audio_duration_s == 12.48
    long_audio = ffprobe_json(duration="10", streams=[{"codec_type": "audio", "duration": "3700"}])
    with pytest.raises(Unprocessable) as exc:
        check_media(long_audio, max_duration_s=3600)
    assert exc.value.code == "too_long"
    data = ffprobe_json(duration=None, streams=[{"index": 0, "codec_type": "audio", "codec_name": "mp3"}])
    with pytest.raises(Unprocessable) as exc:
        check_media(data, max_duration_s=3600)
    assert exc.value.code == "unknown_duration"
    for bad in ("nan", "inf", "-3", "N/A"):
        with pytest.raises(Unprocessable):
            check_media(ffprobe_json(duration=bad, streams=[{"codec_type": "audio"}]), max_duration_s=3600)


def test_matroska_stream_duration_tag_and_cover_art():
    data = ffprobe_json(format_name="matroska,webm", duration=None, streams=[
        {"index": 0, "codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
        {"index": 1, "codec_type": "audio", "codec_name": "opus", "tags": {"DURATION": "01:02:03.500000000"}},
    ])
    info = parse_ffprobe(data)
    assert not info.has_video
    assert info.audio[0].duration_s == 3723.5 and info.duration_s == 3723.5


def test_sniff_refuses_playlists_and_scripts(tmp_path):
    for i, head in enumerate([b"#EXTM3U\n#EXT-X-VERSION:3\n", b"\xef\xbb\xbf#EXTM3U\n", b"ffconcat version 1.0\n",
                              b"  #EXTM3U", b'<?xml version="1.0"?><MPD>']):
        p = tmp_path / f"f{i}"
        p.write_bytes(head + b"file:///etc/passwd\n")
        with pytest.raises(UnsupportedMedia) as exc:
            probe_mod.probe(p, ffprobe="/nonexistent/ffprobe", max_duration_s=60)
        assert exc.value.code == "container_not_allowed"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedMedia) as exc:
        probe_mod.probe(empty, ffprobe="/nonexistent/ffprobe", max_duration_s=60)
    assert exc.value.code == "not_media"


def test_ffprobe_command_is_restricted(monkeypatch, tmp_path):
    seen = {}

    class Done:
        returncode = 0
        stdout = b'{"format": {"format_name": "wav", "duration": "1.0"}, "streams": [{"codec_type": "audio"}]}'
        stderr = b""

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        seen["kw"] = kw
        return Done()

    monkeypatch.setattr(probe_mod.subprocess, "run", fake_run)
    p = tmp_path / "a.wav"
    p.write_bytes(b"RIFF....WAVE")
    probe_mod.probe(p, ffprobe="ffprobe", max_duration_s=60)
    cmd = seen["cmd"]
    assert cmd[cmd.index("-protocol_whitelist") + 1] == "file"
    assert "hls" not in cmd[cmd.index("-format_whitelist") + 1]
    assert cmd[-1] == f"file:{p}" and seen["kw"]["timeout"] > 0

    Done.returncode, Done.stdout, Done.stderr = 1, b"{}", b"[png_pipe @ 0x1] Format not on whitelist 'x'"
    with pytest.raises(UnsupportedMedia) as exc:
        probe_mod.probe(p, ffprobe="ffprobe", max_duration_s=60)
    assert exc.value.code == "container_not_allowed"
    Done.stderr = b"Invalid data found when processing input"
    with pytest.raises(UnsupportedMedia) as exc:
        probe_mod.probe(p, ffprobe="ffprobe", max_duration_s=60)
    assert exc.value.code == "not_media"
