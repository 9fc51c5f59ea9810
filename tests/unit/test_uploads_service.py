"""Resumable uploads (tus): the use cases over in-memory fakes with the real rules.

What a client notices: the bytes stored are exactly the bytes sent, whatever the part sizes; a part at
the wrong offset, a corrupt part, a part too large and a second writer are refused and change nothing;
the last part makes the job (queued, or failed with the probe's reason); expired uploads go with every
chunk.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.apigw import ALICE, BOB
from vid2mp3.errors import (
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidInput,
    Locked,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMedia,
)
from vid2mp3.jobs import service
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.log import get_logger
from vid2mp3.media.probe import AudioStream, MediaInfo
from vid2mp3.objectstore import CHUNK_SIZE, VIDEOS_BUCKET
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.queue.topology import CONVERSION_FAILED_QUEUE, VIDEO_CONVERSION_QUEUE
from vid2mp3.settings import load_settings
from vid2mp3.uploads import service as uploads
from vid2mp3.uploads.memory import InMemoryUploadRepository

MIB = 1024 * 1024
TUS = {"tus-resumable": "1.0.0"}


def probe(path: Path, track: object = None, present: object = None) -> MediaInfo:
    """Stands for ffprobe: "MEDIA" files are 3 s clips, "#EXTM3U" a playlist (its container refused),
    "NOAUDIO" has no audio, anything else is not media. Reads the head like ffprobe would."""
    head = path.read_bytes()[:16]
    if head.startswith(b"MEDIA"):
        return MediaInfo("matroska,webm", 3.0, (AudioStream(1, "opus", 2, 48000, 3.0),), True)
    if head.startswith(b"#EXTM3U"):
        raise UnsupportedMedia("This kind of file is not accepted.", code="container_not_allowed")
    if head.startswith(b"NOAUDIO"):
        raise Unprocessable("The file has no audio stream to convert.", code="no_audio_stream")
    raise UnsupportedMedia("The file is not an audio or video file we can read.", code="not_media")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def d(clock: Clock, tmp_path: Path) -> uploads.UploadsDeps:
    settings = load_settings({"PUBLIC_BASE_URL": "https://api.test/v1", "MAX_UPLOAD_BYTES": str(64 * MIB)})
    jobs = service.JobsDeps(settings=settings, jobs=InMemoryJobRepository(clock=clock), store=InMemoryObjectStore(),
                            publisher=InMemoryPublisher(), logger=get_logger("test"), probe=probe, clock=clock)
    return uploads.UploadsDeps(jobs=jobs, uploads=InMemoryUploadRepository(clock=clock), work_root=tmp_path)


def media(size: int, head: bytes = b"MEDIA") -> bytes:
    return head + os.urandom(size - len(head))


def new(d: uploads.UploadsDeps, length: int, metadata: str = "", **headers: str) -> str:
    got = uploads.create(d, ALICE, {**TUS, "upload-length": str(length), "upload-metadata": metadata, **headers},
                         correlation_id="corr-12345678")
    return got.upload.id


def send(d: uploads.UploadsDeps, upload_id: str, data: bytes, part: int, *, start: int = 0) -> uploads.Appended:
    """Send `data` from `start` in parts of `part` bytes, like a tus client."""
    done = None
    for offset in range(start, len(data), part):
        done = uploads.append(d, ALICE, upload_id, offset, data[offset:offset + part], checksum=None)
    assert done is not None
    return done


def stored(d: uploads.UploadsDeps, video_id: str) -> bytes:
    return b"".join(d.jobs.store.read(VIDEOS_BUCKET, video_id))


@pytest.mark.parametrize("part", [4 * MIB, 1 * MIB + 7, CHUNK_SIZE, 100_001])
def test_parts_of_any_size_store_exactly_the_file_and_make_a_queued_job(d, part):
    data = media(9 * MIB + 12345)
    upload_id = new(d, len(data), "filename Y2xpcC53ZWJt,bitrate MTI4aw==")  # clip.webm, 128k
    done = send(d, upload_id, data, part)
    assert done.upload.finished and done.upload.offset == len(data)
    assert stored(d, upload_id) == data
    # Nothing was written twice or copied at the end: whole chunks, then the last one.
    chunks = d.jobs.store.chunks[(VIDEOS_BUCKET, upload_id)]
    assert sorted(chunks) == list(range(len(chunks)))
    assert all(len(c) == CHUNK_SIZE for n, c in chunks.items() if n < len(chunks) - 1)
    job = done.job
    assert job is not None and job.id == upload_id and job.status == "queued" and job.size == len(data)
    assert job.filename == "clip.webm" and job.bitrate == "128k" and job.sha256 is None
    assert job.extra["media"]["format"] == "matroska,webm" and job.duration_s == 3.0
    assert job.owner_id == ALICE.user_id and job.correlation_id == "corr-12345678"
    [message] = d.jobs.publisher.messages
    assert message.queue == VIDEO_CONVERSION_QUEUE and message.body["job_id"] == job.id
    assert message.body["video_id"] == upload_id and message.body["options"] == {"bitrate": "128k"}


def test_creation_with_upload_takes_the_first_part_with_the_post(d):
    data = media(6 * MIB)
    got = uploads.create(d, ALICE, {**TUS, "upload-length": str(len(data)),
                                    "content-type": "application/offset+octet-stream"},
                         correlation_id="corr-12345678", body=data[:4 * MIB])
    assert got.upload.offset == 4 * MIB
    done = uploads.append(d, ALICE, got.upload.id, 4 * MIB, data[4 * MIB:], checksum=None)
    assert done.job is not None and stored(d, got.upload.id) == data


def test_a_small_file_in_one_post_is_a_job_at_once(d):
    data = media(300_000)
    got = uploads.create(d, ALICE, {**TUS, "upload-length": str(len(data)),
                                    "content-type": "application/offset+octet-stream"},
                         correlation_id="corr-12345678", body=data)
    assert got.upload.finished and got.job is not None and got.job.status == "queued"


def test_a_part_at_the_wrong_offset_is_409_and_changes_nothing(d):
    data = media(2 * MIB)
    upload_id = new(d, len(data))
    uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=None)
    with pytest.raises(Conflict) as refused:
        uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=None)  # sent twice
    assert refused.value.code == "offset_mismatch" and "1048576" in refused.value.message
    assert uploads.status(d, ALICE, upload_id).offset == MIB
    send(d, upload_id, data, MIB, start=MIB)
    assert stored(d, upload_id) == data


def test_a_corrupt_part_is_460_and_stores_nothing(d):
    data = media(2 * MIB)
    upload_id = new(d, len(data))
    wrong = ("sha1", hashlib.sha1(b"something else").digest())
    with pytest.raises(ChecksumMismatch):
        uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=wrong)
    assert uploads.status(d, ALICE, upload_id).offset == 0
    right = ("sha1", hashlib.sha1(data[:MIB]).digest())
    assert uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=right).upload.offset == MIB


def test_a_part_over_4_mib_is_413_naming_the_limit(d):
    upload_id = new(d, 10 * MIB)
    with pytest.raises(PayloadTooLarge) as refused:
        uploads.append(d, ALICE, upload_id, 0, media(4 * MIB + 1), checksum=None)
    assert refused.value.code == "part_too_large" and "4 MiB" in refused.value.message
    assert uploads.status(d, ALICE, upload_id).offset == 0


def test_a_part_past_the_declared_length_is_refused(d):
    upload_id = new(d, MIB)
    with pytest.raises(InvalidInput) as refused:
        uploads.append(d, ALICE, upload_id, 0, media(MIB + 1), checksum=None)
    assert refused.value.code == "past_upload_length"


def test_two_writers_at_one_offset_cannot_both_win(d):
    data = media(3 * MIB)
    upload_id = new(d, len(data))
    # A first PATCH holds the lease (it is writing right now) ...
    assert d.uploads.claim(upload_id, ALICE.user_id, 0, str(uuid.uuid4()), 40) is not None
    # ... so a second at the same offset is 423 (the client retries after a moment), and stores nothing.
    with pytest.raises(Locked) as refused:
        uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=None)
    assert refused.value.retry_after >= 1
    assert uploads.status(d, ALICE, upload_id).offset == 0


def test_a_killed_writers_lease_lapses_and_its_leftovers_are_replaced(d, clock):
    data = media(3 * MIB)
    upload_id = new(d, len(data))
    uploads.append(d, ALICE, upload_id, 0, data[:MIB], checksum=None)
    # A writer claims the next part, stores garbage chunks, and dies before it records anything.
    token = str(uuid.uuid4())
    claimed = d.uploads.claim(upload_id, ALICE.user_id, MIB, token, 40)
    assert claimed is not None
    first = (MIB - len(claimed.carry)) // CHUNK_SIZE
    d.jobs.store.write_chunks(VIDEOS_BUCKET, upload_id, first, b"\xff" * 3 * CHUNK_SIZE)
    clock.now += timedelta(seconds=41)
    send(d, upload_id, data, MIB, start=MIB)
    assert stored(d, upload_id) == data


def test_a_repeated_last_part_answers_with_the_same_job(d):
    data = media(2 * MIB)
    upload_id = new(d, len(data))
    done = send(d, upload_id, data, MIB)
    again = uploads.append(d, ALICE, upload_id, len(data), b"", checksum=None)
    assert again.job is not None and done.job is not None and again.job.id == done.job.id
    assert len(d.jobs.publisher.messages) == 1


def test_the_first_part_of_a_refused_kind_of_file_is_415_at_once(d):
    upload_id = new(d, 50 * MIB)
    with pytest.raises(UnsupportedMedia) as refused:
        uploads.append(d, ALICE, upload_id, 0, b"#EXTM3U\n" + b"x" * MIB, checksum=None)
    assert refused.value.code == "container_not_allowed"
    assert d.jobs.store.chunks == {} and d.jobs.jobs.rows == {}
    with pytest.raises(NotFound):  # the upload is gone with it
        uploads.status(d, ALICE, upload_id)


@pytest.mark.parametrize(("head", "code"), [(b"NOAUDIO", "no_audio_stream"), (b"TEXT", "not_media")])
def test_a_small_file_the_probe_refuses_becomes_a_failed_job_with_the_reason(d, head, code):
    data = media(2 * MIB, head)
    upload_id = new(d, len(data), "filename bm90ZXMudHh0")  # notes.txt
    done = send(d, upload_id, data, MIB)
    job = done.job
    assert job is not None and job.status == "failed" and job.error_code == code
    # The failure event goes out (so does the email), once; the video stays with the job, as any failed
    # job's does, until the job is deleted.
    [event] = d.jobs.publisher.messages
    assert event.queue == CONVERSION_FAILED_QUEUE and event.body["error"]["code"] == code
    assert stored(d, upload_id) == data


def test_a_large_file_whose_parts_do_not_decide_is_left_to_the_converter(d):
    data = media(30 * MIB, b"TEXT")  # the probe says "not media" on the head and tail alone: not final
    upload_id = new(d, len(data))
    job = send(d, upload_id, data, 4 * MIB).job
    assert job is not None and job.status == "queued" and "media" not in job.extra
    assert stored(d, upload_id) == data  # the converter probes the whole file, with the same probe


def test_a_large_file_is_probed_from_its_head_and_tail(d):
    data = media(40 * MIB)
    job = send(d, new(d, len(data)), data, 4 * MIB).job
    assert job is not None and job.extra["media"]["format"] == "matroska,webm"


def test_another_users_upload_is_404_everywhere(d):
    upload_id = new(d, MIB)
    with pytest.raises(NotFound):
        uploads.status(d, BOB, upload_id)
    with pytest.raises(NotFound):
        uploads.append(d, BOB, upload_id, 0, media(MIB), checksum=None)
    with pytest.raises(NotFound):
        uploads.terminate(d, BOB, upload_id)
    assert uploads.status(d, ALICE, upload_id).offset == 0


def test_creation_is_refused_over_the_maximum_and_for_an_empty_file(d):
    with pytest.raises(PayloadTooLarge):
        new(d, 64 * MIB + 1)
    with pytest.raises(InvalidInput):
        new(d, 0)
    with pytest.raises(InvalidInput):
        uploads.create(d, ALICE, TUS, correlation_id="corr-12345678")  # no Upload-Length
    with pytest.raises(InvalidInput) as refused:
        new(d, MIB, "bitrate NDQ0aw==")  # 444k
    assert refused.value.code == "invalid_bitrate"


def test_termination_removes_every_byte(d):
    data = media(3 * MIB)
    upload_id = new(d, len(data))
    uploads.append(d, ALICE, upload_id, 0, data[:2 * MIB], checksum=None)
    uploads.terminate(d, ALICE, upload_id)
    assert d.jobs.store.chunks == {}
    with pytest.raises(NotFound):
        uploads.status(d, ALICE, upload_id)


def test_an_upload_being_written_cannot_be_terminated_under_its_writer(d):
    upload_id = new(d, 3 * MIB)
    assert d.uploads.claim(upload_id, ALICE.user_id, 0, str(uuid.uuid4()), 40) is not None
    with pytest.raises(Locked):
        uploads.terminate(d, ALICE, upload_id)
    assert uploads.status(d, ALICE, upload_id).offset == 0


def test_a_finished_upload_cannot_be_terminated(d):
    data = media(MIB)
    upload_id = new(d, len(data))
    send(d, upload_id, data, MIB)
    with pytest.raises(Conflict) as refused:
        uploads.terminate(d, ALICE, upload_id)
    assert f"/videos/{upload_id}" in refused.value.message


def test_an_expired_upload_is_410_then_swept_with_every_chunk(d, clock):
    data = media(3 * MIB)
    unfinished = new(d, len(data))
    uploads.append(d, ALICE, unfinished, 0, data[:2 * MIB], checksum=None)
    finished = new(d, len(data))
    send(d, finished, data, MIB)
    fresh_clock = clock.now
    clock.now = fresh_clock + timedelta(hours=24) - timedelta(seconds=1)
    assert uploads.sweep(d).removed == []  # one second before expiry nothing goes
    clock.now = fresh_clock + timedelta(hours=24, seconds=1)
    with pytest.raises(Gone):
        uploads.append(d, ALICE, unfinished, 2 * MIB, data[2 * MIB:], checksum=None)
    swept = uploads.sweep(d)
    assert swept.removed == [unfinished] and swept.forgotten == [finished]
    assert (VIDEOS_BUCKET, unfinished) not in d.jobs.store.chunks
    assert stored(d, finished) == data  # the finished upload's video is the job's: it stays
    with pytest.raises(NotFound):
        uploads.status(d, ALICE, unfinished)


def test_discovery_headers_name_the_extensions_and_the_maximum(d):
    headers = uploads.discovery_headers(d)
    assert headers["Tus-Version"] == "1.0.0" and headers["Tus-Max-Size"] == str(64 * MIB)
    assert set(headers["Tus-Extension"].split(",")) == {"creation", "creation-with-upload", "termination",
                                                       "expiration", "checksum"}
    assert "sha1" in headers["Tus-Checksum-Algorithm"].split(",")
