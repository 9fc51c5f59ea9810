"""The convert function against the real services: PostgreSQL, RabbitMQ, a MongoDB-wire server (GridFS)
and the ffmpeg layer's binaries, on media generated here by that ffmpeg (seconds long).

The handler (functions/convert/app.py) gets the exact `aws:rmq` event the bridge builds. Events go to
private queues per test module (declared with the real topology), so a running stack's notify function
never consumes them; they are deleted afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pika
import pymongo
import pytest

from infra.bridge import Message, build_rmq_event
from vid2mp3.convert import source as convert_source
from vid2mp3.convert.lock import PostgresJobLock
from vid2mp3.convert.service import Converter, mp3_object_id
from vid2mp3.convert.source import InputMode, choose_input
from vid2mp3.db.postgres import Postgres
from vid2mp3.errors import AppError
from vid2mp3.jobs import Job, conversion_message
from vid2mp3.jobs.postgres import PostgresJobRepository
from vid2mp3.log import get_logger
from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe
from vid2mp3.media.layout import LayoutError
from vid2mp3.media.probe import probe
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET
from vid2mp3.objectstore.gridfs import GridFSStore
from vid2mp3.queue import topology
from vid2mp3.queue.rabbitmq import RabbitMQPublisher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / ".vid2mp3" / "build" / "layers" / "ffmpeg"
APP_PY = ROOT / "functions" / "convert" / "app.py"
ARN = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-local:b-test"


# --- the layer's binaries and the media ----------------------------------------------------------------


def layer_binaries() -> tuple[str, str]:
    """(ffmpeg, ffprobe) of the built ffmpeg layer, found the way the function finds them locally."""
    if not (LAYER / "bin" / "ffmpeg").exists():
        proc = subprocess.run([sys.executable, str(ROOT / "layers" / "ffmpeg" / "build.py")], capture_output=True,
                              text=True, timeout=900, check=False)
        assert proc.returncode == 0, f"the ffmpeg layer build failed:\n{proc.stdout}\n{proc.stderr}"
    env = {LAYERS_DIRS_ENV: str(LAYER), "PATH": ""}
    return find_ffmpeg(None, env, opt_dir="/nonexistent"), find_ffprobe(None, env, opt_dir="/nonexistent")


def generate_media(directory: Path, ffmpeg: str) -> dict[str, Path]:
    def ff(name: str, *args: str) -> Path:
        out = directory / name
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(out)],
                       check=True, timeout=300)
        return out

    video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100,aformat=channel_layouts=stereo"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    media = {
        "faststart.mp4": ff("faststart.mp4", *video, *tone, "-t", "4", *h264, "-c:a", "aac",
                            "-movflags", "+faststart"),
        # ffmpeg's default: the index (moov) after the media data; unreadable from a pipe
        "moov-at-end.mp4": ff("moov-at-end.mp4", *video, *tone, "-t", "4", *h264, "-c:a", "aac"),
        "opus.webm": ff("opus.webm", *video, *tone, "-t", "3", "-c:v", "libvpx", "-deadline", "realtime",
                        "-cpu-used", "8", "-c:a", "libopus"),
        "mp3-audio.mkv": ff("mp3-audio.mkv", *video, *tone, "-t", "3", *h264, "-c:a", "libmp3lame",
                            "-b:a", "128k"),
        "clip.mov": ff("clip.mov", *video, *tone, "-t", "3", *h264, "-c:a", "aac"),
        # MP3 audio in an MP4 (index at the end): the copy path through the audio-only cut
        "mp3-audio.mp4": ff("mp3-audio.mp4", *video, *tone, "-t", "3", *h264, "-c:a", "libmp3lame", "-b:a", "128k"),
        # two audio tracks of different lengths: the first (3 s) is the one converted, never the second
        "two-audio.mp4": ff("two-audio.mp4", *video, *tone, "-f", "lavfi", "-i", "sine=frequency=880:duration=2",
                            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-t", "3", *h264, "-c:a", "aac",
                            "-movflags", "+faststart"),
        "audio-only.wav": ff("audio-only.wav", *tone, "-t", "3", "-c:a", "pcm_s16le"),
        "no-audio.mp4": ff("no-audio.mp4", *video, "-t", "3", *h264),
        # long enough to be killed mid-conversion: 20 minutes of a compact FLAC
        "long.flac": ff("long.flac", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "1200",
                        "-c:a", "flac"),
    }
    for name in ("faststart.mp4", "moov-at-end.mp4"):
        data = media[name].read_bytes()
        cut = directory / f"cut-{name}"
        cut.write_bytes(data[: len(data) // 2])
        media[f"cut-{name}"] = cut
    return media


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    return layer_binaries()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, binaries: tuple[str, str]) -> dict[str, Path]:
    return generate_media(tmp_path_factory.mktemp("convert-media"), binaries[0])


# --- the services ------------------------------------------------------------------------------------------


@dataclass
class Env:
    pg_url: str
    mongo_uri: str
    rabbitmq_url: str
    ffmpeg: str
    ffprobe: str
    work_root: Path
    database: str = field(default_factory=lambda: f"vid2mp3_convert_{uuid.uuid4().hex[:8]}")
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def completed_queue(self) -> str:
        return f"{topology.CONVERSION_COMPLETED_QUEUE}.test-{self.suffix}"

    @property
    def failed_queue(self) -> str:
        return f"{topology.CONVERSION_FAILED_QUEUE}.test-{self.suffix}"

    def config(self) -> dict[str, str]:
        return {"pg_url": self.pg_url, "mongo_uri": self.mongo_uri, "database": self.database,
                "rabbitmq_url": self.rabbitmq_url, "ffmpeg": self.ffmpeg, "ffprobe": self.ffprobe,
                "work_root": str(self.work_root), "completed_queue": self.completed_queue,
                "failed_queue": self.failed_queue}


class RecordingLogger:
    """The test logger, which also keeps each record's message and extra fields (the input mode is there)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in ("debug", "info", "warning", "error", "exception"):
            return method

        def log(msg: str, *args: Any, extra: dict[str, Any] | None = None, **kw: Any) -> Any:
            self.records.append((msg, dict(extra or {})))
            return method(msg, *args, extra=extra, **kw)
        return log

    def inputs(self, job_id: str) -> list[str]:
        """How ffmpeg was fed, run by run, for this job."""
        return [extra["input"] for msg, extra in self.records if msg == "converting" and extra["job_id"] == job_id]

    def messages(self, job_id: str) -> list[str]:
        return [msg for msg, extra in self.records if extra.get("job_id") == job_id]


def make_converter(config: dict[str, str], **overrides: Any) -> Converter:
    """A converter on the real adapters, as bootstrap_convert builds it, with private event queues.
    Also used by the worker subprocess of the SIGKILL test."""
    defaults: dict[str, Any] = {
        "jobs": lambda: PostgresJobRepository(Postgres(config["pg_url"])),
        "store": lambda: GridFSStore(config["mongo_uri"], config["database"]),
        "publisher": lambda: RabbitMQPublisher(config["rabbitmq_url"]),
        "lock": lambda: PostgresJobLock(config["pg_url"]),
    }
    args: dict[str, Any] = {
        "ffmpeg": config["ffmpeg"], "ffprobe": config["ffprobe"], "work_root": Path(config["work_root"]),
        "max_duration_s": 3 * 3600.0, "logger": RecordingLogger(get_logger("convert-test", "INFO")),
        "completed_queue": config["completed_queue"], "failed_queue": config["failed_queue"],
    } | {name: make() for name, make in defaults.items() if name not in overrides} | overrides
    return Converter(**args)


def mongo(uri: str) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(uri)


def close(converter: Converter) -> None:
    """The adapters' connections (the ports have no close; these adapters do)."""
    converter.jobs._db.close()  # type: ignore[attr-defined]
    converter.store.close()  # type: ignore[attr-defined]
    converter.publisher.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def env(pg_url: str, mongo_uri: str, rabbitmq_url: str, binaries: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(pg_url, mongo_uri, rabbitmq_url, *binaries, work_root=tmp_path_factory.mktemp("convert-tmp"))
    yield e
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        ch = conn.channel()
        for q in (e.completed_queue, e.failed_queue):
            ch.queue_delete(q)
            ch.queue_delete(topology.dead_letter_queue(q))
    finally:
        conn.close()
    with mongo(mongo_uri) as client:
        client.drop_database(e.database)


@pytest.fixture(scope="module")
def converter(env: Env) -> Iterator[Converter]:
    c = make_converter(env.config())
    yield c
    close(c)


@pytest.fixture(scope="module")
def app(converter: Converter) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("convert_app_under_test", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "_converter", converter)  # what bootstrap_convert() would build from the environment
        yield module


@pytest.fixture(autouse=True)
def _drain(env: Env) -> None:
    """Each test sees only its own events."""
    events(env, env.completed_queue)
    events(env, env.failed_queue)


def upload_summary(env: Env, path: Path) -> dict[str, Any] | None:
    """What the upload function keeps with the job (Job.extra["media"]): its probe of the file, or
    nothing for a file it refuses (no audio, not media)."""
    try:
        return probe(path, ffprobe=env.ffprobe, max_duration_s=3 * 3600).summary()
    except AppError:
        return None


def new_job(env: Env, converter: Converter, path: Path, *, bitrate: str = "192k",
            summary: dict[str, Any] | bool | None = True) -> Job:
    """A stored video and its queued job. `summary`: True for the upload's probe summary (as every
    upload records), False for none (a job recorded before summaries had audio durations), or one."""
    if summary is True:
        summary = upload_summary(env, path)
    now = datetime.now(UTC)
    job = Job(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="ann@example.com",
              filename=f"My {path.name}", content_type="video/mp4", size=path.stat().st_size, sha256="0" * 64,
              video_id=f"video-{uuid.uuid4().hex}", bitrate=bitrate, correlation_id=f"corr-{uuid.uuid4().hex}",
              created_at=now, updated_at=now, extra={"media": summary} if summary else {})
    with open(path, "rb") as f:
        converter.store.put(VIDEOS_BUCKET, job.video_id, f, filename=path.name, metadata={})
    converter.jobs.create(job)
    return job


def rmq_event(job: Job, *, delivery_count: int | None = 0, queue: str = topology.VIDEO_CONVERSION_QUEUE,
              redelivered: bool = False) -> dict[str, Any]:
    headers = None if delivery_count is None else {"x-delivery-count": delivery_count}
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2, headers=headers,
                                 correlation_id=job.correlation_id)
    body = json.dumps(conversion_message(job)).encode()
    return build_rmq_event(ARN, queue, "/", [Message(body, props, redelivered, 1)])


def events(env: Env, queue: str) -> list[dict[str, Any]]:
    conn = pika.BlockingConnection(pika.URLParameters(env.rabbitmq_url))
    try:
        ch = conn.channel()
        topology.declare(ch, queue)
        got: list[dict[str, Any]] = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append(json.loads(body))
    finally:
        conn.close()


def download(converter: Converter, object_id: str, to: Path) -> Path:
    with open(to, "wb") as f:
        for chunk in converter.store.read(MP3S_BUCKET, object_id):
            f.write(chunk)
    return to


def decoded_duration(ffmpeg: str, path: Path) -> float:
    """Decode the whole file (independently of vid2mp3.convert.verify): the last time ffmpeg reports."""
    out = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
                          "-f", "null", "-progress", "pipe:1", "-"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    times = [int(line.split("=", 1)[1]) for line in out.splitlines()
             if line.startswith("out_time_us=") and line.split("=", 1)[1].isdigit()]
    return max(times) / 1e6


def tags(ffprobe: str, path: Path) -> dict[str, Any]:
    out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=format_name:format_tags:stream=codec_name,"
                          "bit_rate", "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def orphan_chunks(env: Env) -> int:
    with mongo(env.mongo_uri) as client:
        db = client[env.database]
        files = set(db[f"{MP3S_BUCKET}.files"].distinct("_id"))
        return sum(1 for c in db[f"{MP3S_BUCKET}.chunks"].find({}, {"files_id": 1}) if c["files_id"] not in files)


def temp_files(env: Env) -> list[Path]:
    return [p for p in env.work_root.rglob("*") if p.is_file()]


# --- conversions ---------------------------------------------------------------------------------------------


INPUTS = {  # how each is fed to ffmpeg (vid2mp3.convert.source)
    "faststart.mp4": "mp4_audio", "moov-at-end.mp4": "mp4_audio", "clip.mov": "mp4_audio",
    "mp3-audio.mp4": "mp4_audio", "two-audio.mp4": "mp4_audio",
    "opus.webm": "pipe", "mp3-audio.mkv": "pipe", "audio-only.wav": "pipe",
}


@pytest.mark.parametrize("summary", [True, False], ids=["streamed", "spooled"])
@pytest.mark.parametrize("name", list(INPUTS))
def test_converts_each_kind_of_input(env: Env, converter: Converter, app: ModuleType, media: dict[str, Path],
                                     tmp_path: Path, name: str, summary: bool) -> None:
    """Streamed as the upload's probe summary allows; spooled for a job without one (the reference path)."""
    job = new_job(env, converter, media[name], summary=summary)

    assert app.handler(rmq_event(job), None) == {"done": 1}

    assert converter.logger.inputs(job.id) == [INPUTS[name] if summary else "spool"]  # type: ignore[attr-defined]

    done = converter.jobs.get(job.id)
    assert done is not None and done.status == "done" and done.progress == 100 and done.mp3 is not None
    mp3 = download(converter, done.mp3.object_id, tmp_path / "out.mp3")
    assert mp3.stat().st_size == done.mp3.size
    source_s = probe(media[name], ffprobe=env.ffprobe, max_duration_s=3600).audio_duration_s
    assert abs(decoded_duration(env.ffmpeg, mp3) - source_s) <= 0.5
    assert abs(done.mp3.duration_s - source_s) <= 0.5
    facts = tags(env.ffprobe, mp3)
    assert facts["format"]["format_name"] == "mp3" and facts["streams"][0]["codec_name"] == "mp3"
    assert facts["format"]["tags"]["title"] == f"My {Path(name).stem}"
    if name.startswith("mp3-audio"):  # copied, not re-encoded: the source's 128k, not the job's 192k
        assert done.mp3.bitrate == "128k"
    else:
        assert done.mp3.bitrate == "192k"
        assert abs(int(facts["streams"][0]["bit_rate"]) - 192_000) < 2_000  # constant bitrate
    [event] = events(env, env.completed_queue)
    assert event["job_id"] == job.id and event["mp3_size"] == done.mp3.size
    assert event["correlation_id"] == job.correlation_id
    assert events(env, env.failed_queue) == []
    assert temp_files(env) == []


@pytest.mark.parametrize(("name", "code"), [
    ("no-audio.mp4", "no_audio_stream"),
    ("cut-faststart.mp4", "truncated"),  # the index is whole, the data half: a short MP3, refused
    ("cut-moov-at-end.mp4", "undecodable"),  # the index is gone: nothing can be read
])
def test_permanent_failures(env: Env, converter: Converter, app: ModuleType, media: dict[str, Path],
                            name: str, code: str) -> None:
    job = new_job(env, converter, media[name])

    assert app.handler(rmq_event(job), None) == {"failed": 1}

    failed = converter.jobs.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error_code == code and failed.error_message
    [event] = events(env, env.failed_queue)
    assert event["job_id"] == job.id and event["error"]["code"] == code
    assert events(env, env.completed_queue) == []
    assert converter.store.stat(MP3S_BUCKET, mp3_object_id(job.id)) is None
    assert temp_files(env) == []
    # redelivered: acked again, nothing more published
    assert app.handler(rmq_event(job, delivery_count=1, redelivered=True), None) == {"skipped": 1}
    assert events(env, env.failed_queue) == []


# --- streaming: the choices, the audio-only cut, the fallback ----------------------------------------------


def packets_md5(ffmpeg: str, path: Path, fmt: str | None = None) -> str:
    """The MD5 of the first audio stream's packets (copied, not decoded)."""
    forced = ["-f", fmt] if fmt else []
    return subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *forced, "-i", str(path),
                           "-map", "0:a:0", "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


@pytest.mark.parametrize("name", ["faststart.mp4", "moov-at-end.mp4", "clip.mov", "mp3-audio.mp4", "two-audio.mp4"])
def test_the_audio_only_cut_carries_the_same_packets(env: Env, converter: Converter, media: dict[str, Path],
                                                     tmp_path: Path, name: str) -> None:
    """What ffmpeg is sent for an MP4 holds exactly the packets of the file's first audio stream."""
    job = new_job(env, converter, media[name])
    choice = choose_input(converter.store, job, max_duration_s=3600)
    assert choice.mode is InputMode.MP4_AUDIO and choice.stream is not None, choice.reason
    cut = tmp_path / "cut.mp4"
    with open(cut, "wb") as f:
        for piece in choice.stream.open():
            f.write(piece)
    assert cut.stat().st_size == choice.stream.size < media[name].stat().st_size
    assert packets_md5(env.ffmpeg, cut, "mov") == packets_md5(env.ffmpeg, media[name])
    assert abs(decoded_duration(env.ffmpeg, cut) - decoded_duration(env.ffmpeg, media[name])) < 0.05


@pytest.mark.parametrize(("name", "mode"), [("moov-at-end.mp4", "spool"), ("faststart.mp4", "pipe")])
def test_mp4_whose_cut_is_refused(env: Env, converter: Converter, app: ModuleType, media: dict[str, Path],
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, mode: str) -> None:
    """Without the cut, an MP4 with its index at the end is spooled (a pipe cannot read it: ffmpeg writes
    an empty MP3), and one with its index first is piped whole."""

    def refuse(*_args: Any, **_kw: Any) -> Any:
        raise LayoutError("refused by the test")

    monkeypatch.setattr(convert_source, "audio_only_mp4", refuse)
    job = new_job(env, converter, media[name])

    assert app.handler(rmq_event(job), None) == {"done": 1}

    assert converter.logger.inputs(job.id) == [mode]  # type: ignore[attr-defined]
    done = converter.jobs.get(job.id)
    assert done is not None and done.mp3 is not None
    mp3 = download(converter, done.mp3.object_id, tmp_path / "out.mp3")
    assert abs(decoded_duration(env.ffmpeg, mp3) - decoded_duration(env.ffmpeg, media[name])) <= 0.5


def test_moov_at_end_cannot_be_piped_as_it_is(env: Env, media: dict[str, Path], tmp_path: Path) -> None:
    """Why the cut (or the spool) exists, and why -xerror stays: piped whole, the moov-at-end MP4 fails."""
    out = tmp_path / "o.mp3"
    with open(media["moov-at-end.mp4"], "rb") as f:
        done = subprocess.run([env.ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-f", "mov",
                               "-i", "pipe:0", "-map", "0:a:0", "-f", "mp3", "-y", str(out)], stdin=f,
                              capture_output=True, timeout=60, check=False)
    assert done.returncode != 0 or not out.exists() or out.stat().st_size < 2000


@pytest.mark.parametrize("name", ["moov-at-end.mp4", "mp3-audio.mkv"])
def test_a_failed_streamed_conversion_is_redone_from_the_spool(env: Env, converter: Converter, app: ModuleType,
                                                               media: dict[str, Path], tmp_path: Path,
                                                               name: str) -> None:
    """A summary that disagrees with the file (here: 5 s too long): the streamed MP3 fails verification,
    the spool (probed here) converts it, and the job is done once."""
    summary = upload_summary(env, media[name])
    assert summary is not None
    job = new_job(env, converter, media[name], summary=summary | {"audio_duration_s": summary["audio_duration_s"] + 5})

    assert app.handler(rmq_event(job), None) == {"done": 1}

    assert converter.logger.inputs(job.id) == [INPUTS[name], "spool"]  # type: ignore[attr-defined]
    assert "streamed conversion failed; converting from a spooled copy" in converter.logger.messages(job.id)  # type: ignore[attr-defined]
    done = converter.jobs.get(job.id)
    assert done is not None and done.mp3 is not None
    source_s = probe(media[name], ffprobe=env.ffprobe, max_duration_s=3600).audio_duration_s
    assert abs(decoded_duration(env.ffmpeg, download(converter, done.mp3.object_id, tmp_path / "o.mp3"))
               - source_s) <= 0.5
    assert len(events(env, env.completed_queue)) == 1
    assert temp_files(env) == []


def test_duplicate_delivery_yields_one_mp3_and_one_event(env: Env, converter: Converter, app: ModuleType,
                                                         media: dict[str, Path]) -> None:
    job = new_job(env, converter, media["faststart.mp4"])
    assert app.handler(rmq_event(job), None) == {"done": 1}
    assert app.handler(rmq_event(job, delivery_count=None), None) == {"skipped": 1}  # e.g. re-published
    assert len(events(env, env.completed_queue)) == 1
    with mongo(env.mongo_uri) as client:
        files = list(client[env.database][f"{MP3S_BUCKET}.files"].find({"metadata.job_id": job.id}))
    assert [f["_id"] for f in files] == [mp3_object_id(job.id)]


def test_concurrent_duplicates_on_two_workers(env: Env, converter: Converter, media: dict[str, Path]) -> None:
    job = new_job(env, converter, media["moov-at-end.mp4"])
    workers = [make_converter(env.config()), make_converter(env.config())]
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def run(worker: Converter) -> None:
        from vid2mp3.convert.events import deliveries

        try:
            [delivery] = deliveries(rmq_event(job))
            outcomes.append(str(worker.handle(delivery)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for w in workers:
        close(w)
    assert errors == [] and sorted(outcomes) == ["done", "skipped"]
    assert len(events(env, env.completed_queue)) == 1
    assert orphan_chunks(env) == 0


# --- killed, retried, exhausted ------------------------------------------------------------------------------

WORKER = """
import json, sys
sys.path.insert(0, {root!r})
import importlib.util
from tests.integration.test_convert_integration import make_converter
spec = importlib.util.spec_from_file_location("convert_app_worker", {app!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
app._converter = make_converter(json.loads(sys.argv[1]), progress_interval_s=0.2)
print(json.dumps(app.handler(json.loads(sys.argv[2]), None)), flush=True)
"""


def ffmpeg_children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                if "ffmpeg" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].decode():
                    found.append(int(child))
            except OSError:
                continue
    return found


def test_worker_killed_mid_conversion_is_retried_and_completes(env: Env, converter: Converter, app: ModuleType,
                                                                media: dict[str, Path], tmp_path: Path) -> None:
    job = new_job(env, converter, media["long.flac"])
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER.format(root=str(ROOT), app=str(APP_PY)), json.dumps(env.config()),
         json.dumps(rmq_event(job))], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until ffmpeg runs and has reported progress
            current = converter.jobs.get(job.id)
            children = ffmpeg_children(worker.pid)
            if current is not None and current.progress > 0 and children:
                break
            assert worker.poll() is None, f"the worker ended: {worker.communicate()}"
            assert time.monotonic() < deadline, "the conversion never got going"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        for pipe in (worker.stdout, worker.stderr):
            if pipe is not None:
                pipe.close()
    # the kernel took ffmpeg down with its worker
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split(")")[-1][:3]
              for c in children):
        assert time.monotonic() < deadline, "ffmpeg outlived its killed worker"
        time.sleep(0.05)
    killed = converter.jobs.get(job.id)
    assert killed is not None and killed.status == "converting"
    assert temp_files(env), "the killed worker should have left its temporary files"
    # what a worker killed while sending the MP3 leaves: chunks without a files document (those it sent
    # while ffmpeg wrote, if it got that far; these three stand for the rest)
    with mongo(env.mongo_uri) as client:
        for n in range(3):
            client[env.database][f"{MP3S_BUCKET}.chunks"].replace_one(
                {"files_id": mp3_object_id(job.id), "n": n},
                {"files_id": mp3_object_id(job.id), "n": n, "data": b"\0" * 1024}, upsert=True)
    assert orphan_chunks(env) >= 3

    # the broker redelivers it
    assert app.handler(rmq_event(job, delivery_count=1, redelivered=True), None) == {"done": 1}

    done = converter.jobs.get(job.id)
    assert done is not None and done.status == "done" and done.mp3 is not None
    assert abs(decoded_duration(env.ffmpeg, download(converter, done.mp3.object_id, tmp_path / "o.mp3")) - 1200) <= 0.5
    assert orphan_chunks(env) == 0
    assert temp_files(env) == []
    assert len(events(env, env.completed_queue)) == 1


def test_unavailable_store_is_redelivered_then_exhausted(env: Env, converter: Converter, app: ModuleType,
                                                          media: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    job = new_job(env, converter, media["audio-only.wav"])
    down = make_converter(env.config(), store=GridFSStore("mongodb://127.0.0.1:9/?directConnection=true", "x",
                                                          timeout_ms=300))
    monkeypatch.setattr(app, "_converter", down)
    try:
        for count in range(topology.DEFAULT_DELIVERY_LIMIT):
            with pytest.raises(Exception, match="unavailable"):
                app.handler(rmq_event(job, delivery_count=count, redelivered=count > 0), None)
        assert app.handler(rmq_event(job, delivery_count=topology.DEFAULT_DELIVERY_LIMIT, redelivered=True),
                           None) == {"retries_exhausted": 1}
    finally:
        monkeypatch.setattr(app, "_converter", converter)
        close(down)
    failed = converter.jobs.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error_code == "retries_exhausted"
    [event] = events(env, env.failed_queue)
    assert event["job_id"] == job.id and event["error"]["code"] == "retries_exhausted"


def test_delivery_limit_with_the_real_broker(env: Env, converter: Converter, media: dict[str, Path]) -> None:
    """Redeliveries counted by a real quorum queue: the handler fails until the broker's last delivery,
    which marks the job failed, so nothing reaches the dead-letter queue."""
    from vid2mp3.convert.events import deliveries

    limit = 2
    queue = f"{topology.VIDEO_CONVERSION_QUEUE}.test-{uuid.uuid4().hex[:8]}"
    job = new_job(env, converter, media["audio-only.wav"])
    down = make_converter(env.config(), delivery_limit=limit,
                          store=GridFSStore("mongodb://127.0.0.1:9/?directConnection=true", "x", timeout_ms=300))
    conn = pika.BlockingConnection(pika.URLParameters(env.rabbitmq_url))
    try:
        ch = conn.channel()
        topology.declare(ch, queue, limit)
        ch.basic_publish("", queue, json.dumps(conversion_message(job)).encode(),
                         pika.BasicProperties(delivery_mode=2, correlation_id=job.correlation_id))
        outcomes: list[str] = []
        for _ in range(limit + 2):
            method, props, body = None, None, None
            for _wait in range(50):
                method, props, body = ch.basic_get(queue)
                if method is not None:
                    break
                time.sleep(0.1)
            if method is None or body is None:
                break
            [delivery] = deliveries(build_rmq_event(ARN, queue, "/", [Message(body, props, method.redelivered, 1)]))
            try:
                outcomes.append(str(down.handle(delivery)))
                ch.basic_ack(method.delivery_tag)
            except Exception:
                outcomes.append("raised")
                ch.basic_nack(method.delivery_tag, requeue=True)
        assert outcomes == ["raised"] * limit + ["retries_exhausted"]
        method, _props, _body = ch.basic_get(topology.dead_letter_queue(queue))
        assert method is None
    finally:
        ch.queue_delete(queue)
        ch.queue_delete(topology.dead_letter_queue(queue))
        conn.close()
        close(down)
    failed = converter.jobs.get(job.id)
    assert failed is not None and failed.error_code == "retries_exhausted"
    assert [e["error"]["code"] for e in events(env, env.failed_queue)] == ["retries_exhausted"]


def test_dead_lettered_message_fails_the_job_once(env: Env, converter: Converter, app: ModuleType,
                                                  media: dict[str, Path]) -> None:
    job = new_job(env, converter, media["audio-only.wav"])
    converter.jobs.start_conversion(job.id)  # its last attempt was killed mid-conversion
    dlq = topology.dead_letter_queue(topology.VIDEO_CONVERSION_QUEUE)
    assert app.handler(rmq_event(job, queue=dlq), None) == {"retries_exhausted": 1}
    assert app.handler(rmq_event(job, queue=dlq, redelivered=True), None) == {"skipped": 1}
    failed = converter.jobs.get(job.id)
    assert failed is not None and failed.error_code == "retries_exhausted"
    assert len(events(env, env.failed_queue)) == 1


def test_environment_is_not_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    spec = importlib.util.spec_from_file_location("convert_app_import_only", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._converter is None
    assert os.environ.get("DATABASE_URL") is None
