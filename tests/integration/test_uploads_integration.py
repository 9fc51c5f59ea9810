"""Resumable uploads against the real services: the uploads table in PostgreSQL (leases, races), chunks
in GridFS on a MongoDB-wire server, and the probe of a stored video with the layer's ffprobe."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import gridfs
import pymongo
import pytest

from tests.support.media import generate_media, large_video, layer_binaries
from vid2mp3.auth.identity import Identity
from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import InvalidInput, UnsupportedMedia
from vid2mp3.jobs import service
from vid2mp3.jobs.postgres import PostgresJobRepository
from vid2mp3.log import get_logger
from vid2mp3.media.partial import PARTIAL_TAIL_BYTES
from vid2mp3.media.stored import probe_stored
from vid2mp3.objectstore import CHUNK_SIZE, VIDEOS_BUCKET
from vid2mp3.objectstore.gridfs import GridFSStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.settings import load_settings
from vid2mp3.uploads import Upload
from vid2mp3.uploads import service as uploads
from vid2mp3.uploads.postgres import PostgresUploadRepository

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def db(pg_url: str) -> Iterator[Postgres]:
    d = Postgres(pg_url)
    yield d
    d.close()


@pytest.fixture(scope="module")
def store(mongo_uri: str) -> Iterator[GridFSStore]:
    s = GridFSStore(mongo_uri, f"uploads_{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


@pytest.fixture
def repo(db: Postgres) -> PostgresUploadRepository:
    return PostgresUploadRepository(db)


def an_upload(length: int = 10 * MIB, *, expires_in: timedelta = timedelta(hours=1)) -> Upload:
    now = datetime.now(UTC)
    return Upload(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="a@example.com", length=length,
                  filename="clip.mkv", content_type="video/x-matroska", bitrate="192k", correlation_id="corr-1234",
                  created_at=now, expires_at=now + expires_in, metadata="filename Y2xpcC5ta3Y=")


# --- the uploads table ----------------------------------------------------------------------------


def test_offset_and_carry_move_together_under_the_lease(repo):
    u = an_upload()
    repo.create(u)
    token = str(uuid.uuid4())
    claimed = repo.claim(u.id, u.owner_id, 0, token, 40)
    assert claimed is not None and claimed.offset == 0 and claimed.metadata == u.metadata
    assert repo.claim(u.id, u.owner_id, 0, str(uuid.uuid4()), 40) is None  # held
    assert not repo.advance(u.id, str(uuid.uuid4()), 0, 100, b"x")  # not the holder
    assert repo.advance(u.id, token, 0, 3 * MIB, b"tail-bytes")
    got = repo.get(u.id, u.owner_id)
    assert got is not None and got.offset == 3 * MIB and got.carry == b"tail-bytes"
    assert repo.get(u.id, str(uuid.uuid4())) is None  # someone else's
    assert repo.claim(u.id, u.owner_id, 0, str(uuid.uuid4()), 40) is None  # the offset moved on


def test_of_many_racing_claims_exactly_one_wins(repo):
    u = an_upload()
    repo.create(u)
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        token = str(uuid.uuid4())
        own = Postgres(repo._db._url)  # a connection each, as concurrent Lambda workers have
        try:
            barrier.wait()
            if PostgresUploadRepository(own).claim(u.id, u.owner_id, 0, token, 40) is not None:
                winners.append(token)
        finally:
            own.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_a_lapsed_lease_can_be_taken_and_the_late_holder_cannot_record(repo):
    u = an_upload()
    repo.create(u)
    late = str(uuid.uuid4())
    assert repo.claim(u.id, u.owner_id, 0, late, 0.05) is not None
    threading.Event().wait(0.2)
    fresh = str(uuid.uuid4())
    assert repo.claim(u.id, u.owner_id, 0, fresh, 40) is not None
    assert not repo.advance(u.id, late, 0, MIB, b"")
    assert repo.advance(u.id, fresh, 0, MIB, b"")


def test_finish_and_the_sweeps_view(repo):
    done, stale, fresh = an_upload(), an_upload(expires_in=timedelta(seconds=-1)), an_upload()
    for u in (done, stale, fresh):
        repo.create(u)
    token = str(uuid.uuid4())
    assert repo.claim(done.id, done.owner_id, 0, token, 40) is not None
    assert repo.finish(done.id, token)
    finished = repo.get(done.id, done.owner_id)
    assert finished is not None and finished.finished and finished.offset == done.length
    assert repo.claim(stale.id, stale.owner_id, 0, str(uuid.uuid4()), 40) is None  # expired
    expired = {u.id for u in repo.expired(1000)}
    assert stale.id in expired and fresh.id not in expired and done.id not in expired
    repo.remove(stale.id)
    assert repo.get(stale.id, stale.owner_id) is None


# --- chunks in GridFS -----------------------------------------------------------------------------


def test_chunks_written_in_pieces_are_a_standard_gridfs_file_once_sealed(store, mongo_uri):
    data = bytes(range(256)) * (3 * MIB // 256) + b"end"
    oid = str(uuid.uuid4())
    whole = len(data) // CHUNK_SIZE * CHUNK_SIZE
    half = (whole // 2) // CHUNK_SIZE * CHUNK_SIZE
    store.write_chunks(VIDEOS_BUCKET, oid, 0, data[:half])
    assert store.stat(VIDEOS_BUCKET, oid) is None  # invisible until sealed
    # An interrupted attempt left garbage from here on; the next write replaces it.
    store.write_chunks(VIDEOS_BUCKET, oid, half // CHUNK_SIZE, b"\x00" * (3 * CHUNK_SIZE))
    store.write_chunks(VIDEOS_BUCKET, oid, half // CHUNK_SIZE, data[half:])
    store.seal(VIDEOS_BUCKET, oid, len(data), filename="clip.mkv", metadata={"job_id": oid})
    assert b"".join(store.read(VIDEOS_BUCKET, oid)) == data
    # Any GridFS client reads it.
    with pymongo.MongoClient(mongo_uri) as client:
        bucket = gridfs.GridFSBucket(client[store._db.name], bucket_name=VIDEOS_BUCKET)
        out = io.BytesIO()
        bucket.download_to_stream(oid, out)
    assert out.getvalue() == data
    store.seal(VIDEOS_BUCKET, oid, len(data), filename="clip.mkv", metadata={"job_id": oid})  # a retried finish
    store.delete(VIDEOS_BUCKET, oid)
    assert store.stat(VIDEOS_BUCKET, oid) is None


def test_a_delete_with_a_time_budget_stops_and_the_next_finishes(store):
    oid = str(uuid.uuid4())
    data = bytes(600 * CHUNK_SIZE + 10)  # more than one bounded batch (512 chunks)
    store.write_chunks(VIDEOS_BUCKET, oid, 0, data)
    store.seal(VIDEOS_BUCKET, oid, len(data), filename="big", metadata={})
    chunks = store._chunks(VIDEOS_BUCKET)
    assert not store.delete(VIDEOS_BUCKET, oid, budget_s=0)  # one bounded batch, then out of time
    assert store.stat(VIDEOS_BUCKET, oid) is None  # invisible at once
    left = chunks.count_documents({"files_id": oid})
    assert 0 < left < 601
    assert store.delete(VIDEOS_BUCKET, oid, budget_s=60)
    assert chunks.count_documents({"files_id": oid}) == 0


# --- probing a stored video from its head, tail and index, with the real ffprobe --------------------


def put(store: GridFSStore, data: bytes) -> str:
    oid = str(uuid.uuid4())
    store.put(VIDEOS_BUCKET, oid, io.BytesIO(data), filename="v", metadata={})
    return oid


@pytest.fixture(scope="module")
def prober():
    _, ffprobe = layer_binaries()
    return service.media_prober(load_settings({}), ffprobe)


def with_trailing_box(data: bytes, size: int) -> bytes:
    """The file with a `free` box of `size` bytes after everything: its moov is then outside the tail."""
    return data + struct.pack(">I4s", size, b"free") + bytes(size - 8)


@pytest.mark.parametrize("shape", ["matroska", "mov", "mov-index-in-the-middle"])
def test_a_large_stored_video_is_probed_from_a_few_of_its_bytes(store, prober, tmp_path, shape):
    container = "matroska" if shape == "matroska" else "mov"
    path = large_video(tmp_path / f"v.{container}", seconds=40, megabytes=30, container=container)
    data = path.read_bytes()
    if shape == "mov-index-in-the-middle":
        data = with_trailing_box(data, PARTIAL_TAIL_BYTES + MIB)
    verdict = probe_stored(store, VIDEOS_BUCKET, put(store, data), len(data), probe=prober, work_root=tmp_path)
    assert not verdict.whole and verdict.media is not None, verdict
    assert abs(verdict.media.audio_duration_s - 40) < 0.1
    assert list(tmp_path.glob("vid2mp3-probe-*")) == []  # the sparse copy is gone


def test_refusals_on_a_partial_copy(store, prober, tmp_path):
    png = generate_media(tmp_path / "m")["image"].read_bytes()
    image = png + bytes(30 * MIB)  # an image with junk after it: refused for its kind, for good
    verdict = probe_stored(store, VIDEOS_BUCKET, put(store, image), len(image), probe=prober, work_root=tmp_path)
    assert isinstance(verdict.refusal, UnsupportedMedia) and verdict.refusal.code == "container_not_allowed"
    assert not verdict.whole
    text = b"not a video at all\n" * (1600 * 1024)  # 31 MB: only the whole file could say
    verdict = probe_stored(store, VIDEOS_BUCKET, put(store, text), len(text), probe=prober, work_root=tmp_path)
    assert verdict.undecided


def test_the_whole_path_on_real_services(db, store, prober, tmp_path):
    """create -> 4 MiB parts -> job, on PostgreSQL, GridFS and ffprobe: the video as sent, the job probed."""
    settings = load_settings({"PUBLIC_BASE_URL": "https://api.test/v1"})
    jobs = service.JobsDeps(settings=settings, jobs=PostgresJobRepository(db), store=store,
                            publisher=InMemoryPublisher(), logger=get_logger("test"), probe=prober)
    d = uploads.UploadsDeps(jobs=jobs, uploads=PostgresUploadRepository(db), work_root=tmp_path)
    caller = Identity(str(uuid.uuid4()), "u@example.com")
    data = large_video(tmp_path / "trip.mov", seconds=20, megabytes=22, container="mov").read_bytes()
    created = uploads.create(d, caller, {"upload-length": str(len(data))}, correlation_id="corr-12345678")
    done = None
    for offset in range(0, len(data), 4 * MIB):
        done = uploads.append(d, caller, created.upload.id, offset, data[offset:offset + 4 * MIB], checksum=None)
    assert done is not None and done.job is not None and done.job.status == "queued"
    assert done.job.extra["media"]["format"] == "mov,mp4,m4a,3gp,3g2,mj2"
    assert abs(done.job.extra["media"]["audio_duration_s"] - 20) < 0.1
    assert b"".join(store.read(VIDEOS_BUCKET, created.upload.id)) == data
    stored_job = PostgresJobRepository(db).get(created.upload.id, caller.user_id)
    assert stored_job is not None and stored_job.sha256 is None and stored_job.size == len(data)


def test_the_users_audio_track_in_the_tus_metadata(db, store, prober, tmp_path):
    """`audio_track` as a tus metadata key: refused at creation when malformed, taken when the upload ends."""
    ffmpeg, _ = layer_binaries()
    path = tmp_path / "two-languages.mkv"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=3",
                    "-map", "0:a", "-map", "1:a", "-c:a", "libopus",
                    "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(path)],
                   check=True, timeout=60)
    settings = load_settings({"PUBLIC_BASE_URL": "https://api.test/v1"})
    jobs = service.JobsDeps(settings=settings, jobs=PostgresJobRepository(db), store=store,
                            publisher=InMemoryPublisher(), logger=get_logger("test"), probe=prober)
    d = uploads.UploadsDeps(jobs=jobs, uploads=PostgresUploadRepository(db), work_root=tmp_path)
    caller = Identity(str(uuid.uuid4()), "u@example.com")
    data = path.read_bytes()

    def meta(track: str) -> str:
        return "audio_track " + base64.b64encode(track.encode()).decode()

    with pytest.raises(InvalidInput) as refused:
        uploads.create(d, caller, {"upload-length": str(len(data)), "upload-metadata": meta("the french one")},
                       correlation_id="corr-12345678")
    assert refused.value.code == "invalid_audio_track"
    created = uploads.create(d, caller, {"upload-length": str(len(data)), "upload-metadata": meta("fra")},
                             correlation_id="corr-12345678")
    done = uploads.append(d, caller, created.upload.id, 0, data, checksum=None)
    assert done.job is not None and done.job.status == "queued"
    assert done.job.extra["media"]["audio"]["language"] == "fra" and done.job.extra["media"]["audio"]["index"] == 1
