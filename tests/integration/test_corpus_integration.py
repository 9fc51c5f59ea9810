"""The corpus of issue 11 (browser recordings, GStreamer and mkvmerge files) through the real probe and the
real ffmpeg, as the upload and the convert function run them: every class probes to what a player plays,
takes the right track, and converts into an MP3 that verifies and plays that long."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import corpus
from tests.support.playback import played
from vid2mp3.convert.plan import plan_conversion
from vid2mp3.convert.runner import run_ffmpeg
from vid2mp3.convert.verify import check_output, classify_run, measure_mp3
from vid2mp3.errors import Unprocessable
from vid2mp3.media import duration, partial
from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe
from vid2mp3.media.partial import PartialCopyUndecided
from vid2mp3.media.probe import probe
from vid2mp3.media.tracks import parse_track_choice

pytestmark = pytest.mark.integration

LAYER = Path(__file__).resolve().parents[2] / ".vid2mp3" / "build" / "layers" / "ffmpeg"
CAP_S = 3 * 3600.0


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    env = {LAYERS_DIRS_ENV: str(LAYER), "PATH": ""}
    return find_ffmpeg(None, env, opt_dir="/nonexistent"), find_ffprobe(None, env, opt_dir="/nonexistent")


@pytest.fixture(scope="module")
def files(tools):
    return corpus.sample_files(tools[0])


@pytest.mark.parametrize("sample", corpus.SAMPLES, ids=corpus.ids(corpus.SAMPLES))
def test_probe_takes_the_right_track_and_what_a_player_plays(sample, files, tools):
    info = probe(files(sample), ffprobe=tools[1], max_duration_s=CAP_S, track=parse_track_choice(sample.choice))
    assert info.audio_stream.position == sample.track
    assert info.audio_stream.channels == sample.channels
    assert abs(info.audio_duration_s - sample.audio_s) <= sample.tolerance_s, info


@pytest.mark.parametrize("sample", corpus.SAMPLES, ids=corpus.ids(corpus.SAMPLES))
def test_converts_to_an_mp3_that_plays_the_track(sample, files, tools, tmp_path):
    """What the convert function does with a spooled copy: plan from the probe, ffmpeg, verification."""
    ffmpeg, ffprobe = tools
    info = probe(files(sample), ffprobe=ffprobe, max_duration_s=CAP_S, track=parse_track_choice(sample.choice))
    out = tmp_path / "out.mp3"
    plan = plan_conversion(info, ffmpeg=ffmpeg, source=files(sample), output=out, bitrate="128k",
                           filename=sample.name, max_duration_s=CAP_S)
    result = run_ffmpeg(plan.argv, timeout_s=120)
    classify_run(result, timeout_was_ours=True)
    facts = check_output(measure_mp3(out, ffprobe=ffprobe, decode=plan.copy), plan.expected_duration_s)

    mp3 = played(ffmpeg, ffprobe, out)
    assert abs(mp3.seconds - sample.audio_s) <= sample.tolerance_s + 0.05, (mp3, facts)
    assert abs(facts.duration_s - mp3.seconds) <= 0.2  # the encoder's delay and padding: 72 ms frames at 8 kHz
    assert mp3.channels == min(sample.channels, 2)
    # every channel carries the tone: the 5.1 files' centre (the dialogue) reaches both sides
    assert all(level > -40 for level in mp3.levels_db), mp3.levels_db


def test_a_header_that_hides_most_of_the_audio_does_not_get_past_the_cap(files, tools):
    """20 s of audio whose Matroska header says 1 s: the cap (here 10 s) is enforced on the audio."""
    with pytest.raises(Unprocessable) as exc:
        probe(files(corpus.HIDDEN_LENGTH), ffprobe=tools[1], max_duration_s=10)
    assert exc.value.code == "too_long"
    assert probe(files(corpus.HIDDEN_LENGTH), ffprobe=tools[1], max_duration_s=60).audio_duration_s == (
        pytest.approx(20.0, abs=0.1))


def sparse_copy(source: Path, to: Path, ranges: list[tuple[int, int]]) -> Path:
    """A file of the same size holding only `ranges` of `source`; zeros (holes) elsewhere."""
    data = source.read_bytes()
    with open(to, "wb") as f:
        f.truncate(len(data))
        for start, end in ranges:
            f.seek(start)
            f.write(data[start:end])
    return to


# A partial copy of these cannot decide: an AVI's last packets are read from its last video key frame,
# anywhere in the file; the recording's only fragment starts in its head; the French track (2 s) ends
# long before the video (3 s), outside the copy's tail; the shifted audio starts after the copy's head.
UNDECIDED = {"gst-camera.avi", "chromium-recording.mp4", "mkvmerge-languages.mkv", "mkvmerge-shifted.mkv"}
WHOLE_FILES = [s for s in corpus.SAMPLES if not s.choice]


@pytest.mark.parametrize("sample", WHOLE_FILES, ids=corpus.ids(WHOLE_FILES))
def test_a_partial_copy_decides_as_the_whole_file_or_says_it_cannot(sample, files, tools, tmp_path, monkeypatch):
    """The upload of a stored file may probe a copy of only its head, tail and index (issue 9). Scaled down
    to the corpus' sizes (a quarter of the file as the head, half as the tail), that copy gives the whole file's
    verdict, or PartialCopyUndecided where it must: never a refusal of a good file, never another answer."""
    source = files(sample)
    size = source.stat().st_size
    monkeypatch.setattr(partial, "PARTIAL_HEAD_BYTES", size // 4)
    monkeypatch.setattr(partial, "PARTIAL_TAIL_BYTES", size // 2)
    monkeypatch.setattr(duration, "TAIL_WINDOWS", (size // 8, size // 2))
    whole = probe(source, ffprobe=tools[1], max_duration_s=CAP_S)
    with open(source, "rb") as f:
        ranges = partial.needed_ranges(lambda offset, n: os.pread(f.fileno(), n, offset), size)
    assert sum(end - start for start, end in ranges) < size  # a real partial copy: a hole in the middle
    copy = sparse_copy(source, tmp_path / sample.name, ranges)
    if sample.name in UNDECIDED:
        with pytest.raises(PartialCopyUndecided):
            probe(copy, ffprobe=tools[1], max_duration_s=CAP_S, present=ranges)
        return
    got = probe(copy, ffprobe=tools[1], max_duration_s=CAP_S, present=ranges)
    assert got.audio_stream.position == whole.audio_stream.position
    assert got.format_name == whole.format_name
    assert abs(got.audio_duration_s - whole.audio_duration_s) <= 0.05


def test_a_partial_copy_without_its_index_is_undecided(files, tools, tmp_path):
    """An MP4 whose moov the copy lacks is undecided, not refused as "not media"."""
    [sample] = [s for s in corpus.SAMPLES if s.name == "gst-alac.mov"]
    source = files(sample)
    size = source.stat().st_size
    ranges = [(0, 4096), (size - 64, size)]  # qtmux writes the moov at the end: not within these
    copy = sparse_copy(source, tmp_path / "copy.mov", ranges)
    with pytest.raises(PartialCopyUndecided):
        probe(copy, ffprobe=tools[1], max_duration_s=CAP_S, present=ranges)
