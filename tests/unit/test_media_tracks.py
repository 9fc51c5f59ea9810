"""Which audio track is converted: the user's choice, else the one a player would play (no ffmpeg here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vid2mp3.convert.plan import plan_conversion
from vid2mp3.errors import InvalidInput, Unprocessable
from vid2mp3.media.probe import AudioStream, MediaInfo, check_media, summary_info, summary_track
from vid2mp3.media.tracks import TrackChoice, choose_track, normalise_language, parse_track_choice


def track(position: int, language: str | None = None, *, default: bool = False, special: bool = False,
          title: str | None = None, channels: int = 2) -> AudioStream:
    return AudioStream(index=position + 1, codec="aac", channels=channels, sample_rate=48000, duration_s=3.0,
                       position=position, language=language, title=title, default=default, special=special)


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("", None), ("  ", None),
    ("0", TrackChoice(index=0)), (" 2 ", TrackChoice(index=2)),
    ("en", TrackChoice(language="eng")), ("ENG", TrackChoice(language="eng")), ("en-US", TrackChoice(language="eng")),
    ("ger", TrackChoice(language="deu")), ("deu", TrackChoice(language="deu")), ("fre", TrackChoice(language="fra")),
    ("pt_BR", TrackChoice(language="por")),
])
def test_parse_track_choice(text, expected):
    assert parse_track_choice(text) == expected


@pytest.mark.parametrize("text", ["-1", "100", "1.5", "english", "e", "und", "x1", "track 2", "../0"])
def test_parse_track_choice_refuses(text):
    with pytest.raises(InvalidInput) as exc:
        parse_track_choice(text)
    assert exc.value.code == "invalid_audio_track" and "audio_track" in exc.value.message


def test_language_codes():
    assert normalise_language("und") is None and normalise_language(None) is None
    assert normalise_language("zh-Hant") == "zho" and normalise_language("chi") == "zho"


def test_the_default_flagged_track_wins():
    streams = [track(0, "fra"), track(1, "eng", default=True), track(2, "deu")]
    assert choose_track(streams).position == 1


def test_without_a_default_the_first():
    assert choose_track([track(0, "fra"), track(1, "eng")]).position == 0


def test_never_a_commentary_description_or_hearing_impaired_track_when_another_exists():
    streams = [track(0, "eng", default=True, special=True),  # a flagged commentary, even default
               track(1, "eng", title="Audio Description"),  # only its title says so
               track(2, "eng", title="SDH"),
               track(3, "eng"), track(4, "deu")]
    assert choose_track(streams).position == 3
    only_commentary = [track(0, "eng", special=True)]
    assert choose_track(only_commentary).position == 0  # nothing else to play


def test_the_users_choice():
    streams = [track(0, "eng", special=True, default=True), track(1, "eng"), track(2, "ger"), track(3, "deu",
                                                                                                  default=True)]
    assert choose_track(streams, TrackChoice(index=0)).position == 0  # asked for by number: even a commentary
    assert choose_track(streams, TrackChoice(language="eng")).position == 1  # the main English one
    assert choose_track(streams, TrackChoice(language="deu")).position == 3  # German by either code, the default


@pytest.mark.parametrize("choice", [TrackChoice(index=4), TrackChoice(language="jpn")])
def test_a_choice_no_track_matches_is_refused(choice):
    with pytest.raises(Unprocessable) as exc:
        choose_track([track(0, "eng"), track(1, None)], choice)
    assert exc.value.code == "audio_track_not_found"
    assert "0 (eng), 1 (no language)" in exc.value.message


def ffprobe_json() -> dict:
    return {"format": {"format_name": "matroska,webm", "duration": "5.0"}, "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264"},
        {"index": 1, "codec_type": "audio", "codec_name": "opus", "channels": 2, "duration": "2.0",
         "tags": {"language": "eng", "title": "Commentary"}, "disposition": {"default": 1, "comment": 1}},
        {"index": 2, "codec_type": "audio", "codec_name": "ac3", "channels": 6, "duration": "4.0",
         "start_time": "1.0", "tags": {"language": "ger"}, "disposition": {"default": 0}},
    ]}


def test_the_probe_records_the_chosen_track_and_its_duration():
    info = check_media(ffprobe_json(), max_duration_s=60)
    a = info.audio_stream
    assert (a.position, a.index, a.language, a.codec, a.channels, a.start_s) == (1, 2, "ger", "ac3", 6, 1.0)
    assert info.audio_duration_s == 4.0
    summary = info.summary()
    assert summary["audio"] == {"index": 1, "language": "ger", "codec": "ac3", "channels": 6}
    assert summary_track(summary) == 1
    # what the converter rebuilds from the job: the same track, at the same position
    again = summary_info(summary, max_duration_s=60)
    assert again is not None and again.audio_stream.position == 1 and again.audio_duration_s == 4.0
    chosen = check_media(ffprobe_json(), max_duration_s=60, track=TrackChoice(index=0))
    assert chosen.audio_stream.position == 0 and chosen.audio_duration_s == 2.0


def test_the_plan_maps_the_chosen_track_and_downmixes_surround():
    info = check_media(ffprobe_json(), max_duration_s=60)
    argv = plan_conversion(info, ffmpeg="ffmpeg", source=Path("/w/s"), output=Path("/w/o.mp3"), bitrate="192k",
                           filename="f.mkv", max_duration_s=60).argv
    assert argv[argv.index("-map") + 1] == "0:a:1"
    assert argv[argv.index("-ac") + 1] == "2"
    stereo = check_media(ffprobe_json(), max_duration_s=60, track=TrackChoice(index=0))
    argv = plan_conversion(stereo, ffmpeg="ffmpeg", source=None, output=Path("/w/o.mp3"), bitrate="192k",
                           filename="f.mkv", max_duration_s=60).argv
    assert argv[argv.index("-map") + 1] == "0:a:0" and "-ac" not in argv


def test_a_job_shows_its_track():
    from datetime import UTC, datetime

    from vid2mp3.jobs import Job

    now = datetime.now(UTC)
    summary = MediaInfo("matroska,webm", 5.0, (track(0, "eng"), track(1, "deu", channels=6)), True, chosen=1).summary()
    job = Job(id="j", owner_id="o", owner_email="a@b.c", filename="f.mkv", content_type="video/x-matroska", size=1,
              sha256="0", video_id="v", bitrate="192k", correlation_id="c", created_at=now, updated_at=now,
              extra={"media": summary})
    assert job.to_api()["audio"] == {"index": 1, "language": "deu", "codec": "aac", "channels": 6}
    old = Job(**{**job.__dict__, "extra": {"media": {"format": "wav"}}})  # recorded before issue 11
    assert "audio" not in old.to_api()
