"""The README's quick start as a user lives it, over HTTP and SMTP only.

Register, log in, upload every kind of media a user might have, wait for each job, download each MP3
and play it with ffprobe, read the email for each job from the SMTP sink and follow its link, see
that another user gets 404 everywhere, delete.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_convert_e2e import TOLERANCE_S, User, audio_seconds, media_maker, played_seconds
from tests.support.api import Api

pytestmark = pytest.mark.e2e

MAIL_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def journey_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ff = media_maker(tmp_path_factory.mktemp("journey-media"))

    video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000,aformat=channel_layouts=stereo"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    return {
        "faststart.mp4": ff("faststart.mp4", *video, *tone, "-t", "3", *h264, "-c:a", "aac",
                            "-movflags", "+faststart"),
        "index at end.mp4": ff("index at end.mp4", *video, *tone, "-t", "3", *h264, "-c:a", "aac"),
        "clip.webm": ff("clip.webm", *video, *tone, "-t", "3", "-c:v", "libvpx", "-deadline", "realtime",
                        "-c:a", "libopus"),
        "camera.mov": ff("camera.mov", *video, *tone, "-t", "3", *h264, "-c:a", "aac"),
        "voice memo.wav": ff("voice memo.wav", *tone, "-t", "3"),
        "silent film.mp4": ff("silent film.mp4", *video, "-t", "2", *h264),
    }


def _mails_for(mail_dir: Path, job_id: str) -> list[EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message.get("X-Vid2mp3-Job-Id") == job_id:
            found.append(message)
    return found


def wait_for_mail(mail_dir: Path, job_id: str) -> EmailMessage:
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while True:
        mails = _mails_for(mail_dir, job_id)
        if mails:
            time.sleep(1.0)  # a second one, if any were sent, would be here by now
            mails = _mails_for(mail_dir, job_id)
            assert len(mails) == 1, f"{len(mails)} emails for job {job_id}"
            return mails[0]
        assert time.monotonic() < deadline, f"no email for job {job_id} in {mail_dir}"
        time.sleep(0.5)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None and message.get_body(preferencelist=("html",)) is not None
    return str(part.get_content())


def test_the_whole_journey(stack: Stack, journey_media: dict[str, Path], tmp_path: Path) -> None:
    assert stack.mail_dir.is_dir(), "the e2e tier reads mail from the embedded SMTP sink"
    api = Api(stack.api_url)
    alice, mallory = User(api), User(api)

    # A video without sound is refused at the door, and nothing is stored for it.
    body_files = journey_media.copy()
    silent = body_files.pop("silent film.mp4")
    from tests.support.apigw import multipart_body

    body, ctype = multipart_body(silent.read_bytes(), filename=silent.name)
    refused = alice.call("POST", "/videos", raw=body, headers={"Content-Type": ctype})
    assert refused.status == 422 and refused.error_code() == "no_audio_stream", refused.raw

    jobs = {name: alice.upload(path)["id"] for name, path in body_files.items()}
    listed = alice.call("GET", "/videos?limit=100")
    assert listed.status == 200
    assert set(jobs.values()) <= {item["id"] for item in listed.body["items"]}
    assert mallory.call("GET", "/videos").body["items"] == []

    for name, job_id in jobs.items():
        finished = alice.wait_finished(job_id)
        assert finished["status"] == "done", (name, finished)
        source_s = audio_seconds(body_files[name])
        assert abs(finished["mp3"]["duration_s"] - source_s) <= TOLERANCE_S, name

        # The email: one per job, about this file, with a link that downloads the MP3.
        mail = wait_for_mail(stack.mail_dir, job_id)
        text = text_of(mail)
        assert name in text
        links = re.findall(r"https?://\S+/videos/[0-9a-f-]+/mp3", text)
        assert links == [f"{stack.api_url}/videos/{job_id}/mp3"], text
        path = links[0].removeprefix(stack.api_url)
        download = alice.call("GET", path, headers={"Accept": "audio/mpeg"})
        assert download.status == 200 and download.headers["Content-Type"].startswith("audio/mpeg")
        assert len(download.raw) == finished["mp3"]["size"]
        mp3 = tmp_path / f"{job_id}.mp3"
        mp3.write_bytes(download.raw)
        assert abs(played_seconds(mp3) - source_s) <= TOLERANCE_S, name

        # Someone else's job does not exist for them.
        for method, suffix in (("GET", ""), ("GET", "/mp3"), ("DELETE", "")):
            reply = mallory.call(method, f"/videos/{job_id}{suffix}", headers={"Accept": "audio/mpeg, */*"})
            assert reply.status == 404 and reply.error_code() == "not_found", (method, suffix, reply.raw)

    # Delete: gone for the owner too, and deleting again is fine.
    first = next(iter(jobs.values()))
    assert alice.call("DELETE", f"/videos/{first}").status == 204
    assert alice.call("GET", f"/videos/{first}").status == 404
    assert alice.call("GET", f"/videos/{first}/mp3", headers={"Accept": "audio/mpeg"}).status == 404
    assert alice.call("DELETE", f"/videos/{first}").status == 204
