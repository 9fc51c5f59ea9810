"""Every class of issue 11 end to end over HTTP: the corpus' files (browser recordings, GStreamer and
mkvmerge files) are uploaded as a user would (with `audio_track` where the user chooses), converted by
the deployed functions, and downloaded: the MP3 plays as long as the chosen track and the job says which
track that was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_auth_e2e import Api
from tests.e2e.test_convert_e2e import User, binaries
from tests.support import corpus
from tests.support.playback import played
from tests.unit.test_upload_routes import multipart_body

pytestmark = pytest.mark.e2e


PER_USER = 8  # below the active-jobs quota (10 by default), however slowly the bridge converts


@pytest.fixture(scope="module")
def finished(api_url: str) -> dict[corpus.Sample, dict[str, Any]]:
    """Upload the whole corpus first (the bridge converts two at a time), then wait for each job. The
    files are spread over a few users, each of whom has fewer jobs in flight than the quota allows."""
    ffmpeg, _ = binaries()
    files = corpus.sample_files(ffmpeg)
    jobs: dict[corpus.Sample, tuple[User, dict[str, Any]]] = {}
    for start in range(0, len(corpus.SAMPLES), PER_USER):
        user = User(Api(api_url))
        for s in corpus.SAMPLES[start:start + PER_USER]:
            jobs[s] = user, user.upload(files(s), **({"audio_track": s.choice} if s.choice else {}))
    return {s: {"job": job, "done": user.wait_finished(job["id"]), "user": user} for s, (user, job) in jobs.items()}


@pytest.mark.parametrize("sample", corpus.SAMPLES, ids=corpus.ids(corpus.SAMPLES))
def test_every_kind_of_video_converts_to_what_a_player_plays(sample: corpus.Sample, finished, tmp_path: Path) -> None:
    queued, done, user = finished[sample]["job"], finished[sample]["done"], finished[sample]["user"]
    assert queued["audio"]["index"] == sample.track  # said at once, on the 202
    assert done["status"] == "done", done
    assert done["audio"]["index"] == sample.track and done["audio"]["channels"] == sample.channels
    assert abs(done["mp3"]["duration_s"] - sample.audio_s) <= sample.tolerance_s, done

    reply = user.call("GET", f"/videos/{done['id']}/mp3", headers={"Accept": "audio/mpeg"})
    assert reply.status == 200, reply.raw[:300]
    mp3 = tmp_path / "download.mp3"
    mp3.write_bytes(reply.raw)
    heard = played(*binaries(), mp3)
    assert abs(heard.seconds - sample.audio_s) <= sample.tolerance_s + 0.2, heard
    assert heard.channels == min(sample.channels, 2)
    assert all(level > -40 for level in heard.levels_db), heard.levels_db  # 5.1: the centre reaches both sides


def test_an_audio_track_the_file_does_not_have_is_refused(api_url: str) -> None:
    ffmpeg, _ = binaries()
    [sample] = [s for s in corpus.SAMPLES if s.name == "mkvmerge-commentary.mkv" and s.choice is None]
    user = User(Api(api_url))
    for value, status, code in (("jpn", 422, "audio_track_not_found"), ("7", 422, "audio_track_not_found"),
                                ("english please", 400, "invalid_audio_track")):
        body, ctype = multipart_body(corpus.sample_files(ffmpeg)(sample).read_bytes(), filename=sample.name,
                                     fields={"audio_track": value})
        reply = user.call("POST", "/videos", raw=body, headers={"Content-Type": ctype})
        assert reply.status == status and reply.error_code() == code, reply.raw
    assert user.call("GET", "/videos").body["items"] == []  # nothing stored
