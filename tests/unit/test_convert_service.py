"""The conversion use case with fakes: in-memory jobs, store, publisher and lock, and stand-in
ffmpeg/ffprobe executables (small Python scripts) whose behaviour each test writes into the "video".

The "video" stored in the fake GridFS is a JSON document: what the fake ffprobe reports for it and what
the fake ffmpeg does with it (exit code, output length, how long it takes, a signal). The fake ffmpeg
writes its "MP3" as JSON too, which the fake ffprobe counts frames of. So every branch of the service
runs for real (spooling, probing, planning, the runner, verification, storing) without real media.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vid2mp3.convert import failures
from vid2mp3.convert.events import Delivery
from vid2mp3.convert.lock import InMemoryJobLock
from vid2mp3.convert.service import RESERVE_S, Converter, Outcome, mp3_object_id
from vid2mp3.errors import DependencyUnavailable
from vid2mp3.jobs import Job, conversion_message
from vid2mp3.jobs.memory import InMemoryJobRepository
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET, StoredObject
from vid2mp3.objectstore.memory import InMemoryObjectStore
from vid2mp3.queue.memory import InMemoryPublisher
from vid2mp3.queue.topology import CONVERSION_COMPLETED_QUEUE, CONVERSION_FAILED_QUEUE, VIDEO_CONVERSION_QUEUE

MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska's: a "video" can start with it, to be streamed as matroska

FAKE_FFPROBE = textwrap.dedent('''
    import json, sys
    MAGIC = b"\\x1a\\x45\\xdf\\xa3"
    args = sys.argv[1:]
    path = args[-1].removeprefix("file:")
    if "-count_frames" in args or "-count_packets" in args:
        try:
            out = json.load(open(path))
        except ValueError:
            sys.exit(1)
        key = "nb_read_frames" if "-count_frames" in args else "nb_read_packets"
        print(json.dumps({"streams": [{"codec_name": out["codec"], "sample_rate": str(out["sample_rate"]),
                                       key: str(out["frames"])}]}))
        sys.exit(0)
    try:
        spec = json.loads(open(path, "rb").read().removeprefix(MAGIC))
    except ValueError:
        sys.stderr.write("Invalid data found when processing input\\n")
        sys.exit(1)
    print(json.dumps({"format": spec["format"], "streams": spec["streams"]}))
''')

FAKE_FFMPEG = textwrap.dedent('''
    import json, os, signal, sys, time
    MAGIC = b"\\x1a\\x45\\xdf\\xa3"
    args = sys.argv[1:]
    source = args[args.index("-i") + 1]
    piped = source == "pipe:0"
    data = sys.stdin.buffer.read() if piped else open(source.removeprefix("file:"), "rb").read()
    spec = json.loads(data.removeprefix(MAGIC))
    out_path = args[-1].removeprefix("file:")
    behave = spec.get("ffmpeg", {})
    if piped:  # how it behaves when streamed, over how it behaves on a file
        behave = {**behave, **behave.get("piped", {})}
    if behave.get("argv_log"):
        with open(behave["argv_log"] + (".piped" if piped else ""), "w") as f:
            json.dump(args, f)
    duration = float(behave.get("out_duration", spec["format"]["duration"]))
    steps = int(behave.get("steps", 3))
    for i in range(1, steps + 1):
        time.sleep(float(behave.get("step_s", 0)))
        print(f"out_time_us={int(duration * 1e6 * i / steps)}", flush=True)
        print("progress=continue", flush=True)
    rate = 44100
    with open(out_path, "w") as f:
        json.dump({"codec": behave.get("out_codec", "mp3"), "sample_rate": rate,
                   "frames": round(duration * rate / 1152)}, f)
    if behave.get("signal"):
        os.kill(os.getpid(), int(behave["signal"]))
    sys.stderr.write(behave.get("stderr", ""))
    print("progress=end", flush=True)
    sys.exit(int(behave.get("exit", 0)))
''')


def media(duration: float = 4.0, *, codec: str = "aac", audio: bool = True, fmt: str = "mov,mp4,m4a,3gp,3g2,mj2",
          **ffmpeg: Any) -> bytes:
    streams: list[dict[str, Any]] = [{"index": 0, "codec_type": "video", "codec_name": "h264"}]
    if audio:
        streams.append({"index": 1, "codec_type": "audio", "codec_name": codec, "channels": 2,
                        "sample_rate": "44100", "duration": str(duration), "bit_rate": "128000"})
    return json.dumps({"format": {"format_name": fmt, "duration": str(duration)}, "streams": streams,
                       "ffmpeg": ffmpeg}).encode()


def mkv(duration: float = 4.0, *, codec: str = "aac", **ffmpeg: Any) -> tuple[bytes, dict[str, Any]]:
    """A "video" that streams (Matroska's magic, then the spec) and the probe summary the upload kept."""
    summary = {"format": "matroska,webm", "duration_s": duration, "has_video": True, "audio_codec": codec,
               "audio_channels": 2, "audio_sample_rate": 44100, "audio_streams": 1, "audio_duration_s": duration,
               "audio_bit_rate": 128000}
    return MAGIC + media(duration, codec=codec, fmt="matroska,webm", **ffmpeg), summary


class RecordingLogger(logging.Logger):
    """A logger that keeps (level, message, extra) of every record: the input mode is in `extra`."""

    def __init__(self) -> None:
        super().__init__("convert-test", logging.DEBUG)
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: int, msg: object, args: Any, exc_info: Any = None, extra: Any = None,
             stack_info: bool = False, stacklevel: int = 1) -> None:
        self.records.append((logging.getLevelName(level), str(msg), dict(extra or {})))

    def inputs(self) -> list[str]:
        """The input mode of each ffmpeg run, in order."""
        return [extra["input"] for _level, msg, extra in self.records if msg == "converting"]


def write_script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


@dataclass
class World:
    jobs: InMemoryJobRepository
    store: InMemoryObjectStore
    publisher: InMemoryPublisher
    lock: InMemoryJobLock
    converter: Converter
    work_root: Path
    tmp: Path

    def add_job(self, video: bytes, *, filename: str = "holiday clip.mp4", bitrate: str = "192k",
                summary: dict[str, Any] | None = None) -> Job:
        """`summary`: the upload's probe summary (Job.extra["media"]); without one the video is spooled."""
        now = datetime.now(UTC)
        job = Job(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="ann@example.com",
                  filename=filename, content_type="video/mp4", size=len(video), sha256="0" * 64,
                  video_id=f"video-{uuid.uuid4().hex}", bitrate=bitrate, correlation_id=f"corr-{uuid.uuid4().hex}",
                  created_at=now, updated_at=now, extra={"media": summary} if summary else {})
        self.jobs.create(job)
        self.store.objects[(VIDEOS_BUCKET, job.video_id)] = (
            StoredObject(job.video_id, filename, len(video), {}), video)
        return job

    def delivery(self, job: Job, *, count: int | None = 0, queue: str = VIDEO_CONVERSION_QUEUE) -> Delivery:
        return Delivery(queue=queue, body=json.dumps(conversion_message(job)).encode(),
                        redelivered=bool(count), delivery_count=count, correlation_id=job.correlation_id)

    def events(self, queue: str) -> list[dict[str, Any]]:
        return [m.body for m in self.publisher.messages if m.queue == queue]

    def leftovers(self) -> list[Path]:
        return [p for p in self.work_root.rglob("*") if p.is_file()]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    work_root = tmp_path / "work"
    work_root.mkdir()
    jobs, store, publisher, lock = (InMemoryJobRepository(), InMemoryObjectStore(), InMemoryPublisher(),
                                    InMemoryJobLock())
    converter = Converter(
        jobs=jobs, store=store, publisher=publisher, lock=lock,
        ffmpeg=write_script(bin_dir / "ffmpeg", FAKE_FFMPEG),
        ffprobe=write_script(bin_dir / "ffprobe", FAKE_FFPROBE),
        work_root=work_root, max_duration_s=3 * 3600, sleep=lambda _s: None, progress_interval_s=0.05,
        logger=RecordingLogger(),
    )
    yield World(jobs, store, publisher, lock, converter, work_root, tmp_path)


# --- success -------------------------------------------------------------------------------------------


def test_converts_stores_records_and_publishes_once(world: World) -> None:
    log = world.tmp / "argv.json"
    job = world.add_job(media(4.0, argv_log=str(log)))

    assert world.converter.handle(world.delivery(job)) is Outcome.DONE

    done = world.jobs.get(job.id)
    assert done is not None and done.status == "done" and done.progress == 100
    assert done.mp3 is not None and done.mp3.object_id == mp3_object_id(job.id)
    assert abs(done.mp3.duration_s - 4.0) < 0.05 and done.mp3.bitrate == "192k"
    stored = world.store.stat(MP3S_BUCKET, mp3_object_id(job.id))
    assert stored is not None and stored.length == done.mp3.size
    assert stored.filename == "holiday clip.mp3" and stored.metadata["job_id"] == job.id
    [event] = world.events(CONVERSION_COMPLETED_QUEUE)
    assert event["job_id"] == job.id and event["mp3_size"] == done.mp3.size
    assert world.publisher.messages[0].correlation_id == job.correlation_id
    assert world.events(CONVERSION_FAILED_QUEUE) == []
    argv = json.loads(log.read_text())
    assert argv[argv.index("-c:a") + 1] == "libmp3lame" and argv[argv.index("-b:a") + 1] == "192k"
    assert "title=holiday clip" in argv
    assert world.leftovers() == []


def test_mp3_source_is_copied_and_its_bitrate_recorded(world: World) -> None:
    log = world.tmp / "argv.json"
    job = world.add_job(media(4.0, codec="mp3", fmt="matroska,webm", argv_log=str(log)))

    assert world.converter.handle(world.delivery(job)) is Outcome.DONE

    argv = json.loads(log.read_text())
    assert argv[argv.index("-c:a") + 1] == "copy" and "-b:a" not in argv
    assert argv[argv.index("-f") + 1] == "matroska"
    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None and done.mp3.bitrate == "128k"


def test_duplicate_delivery_after_done_is_skipped(world: World) -> None:
    job = world.add_job(media(2.0))
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.SKIPPED
    assert len(world.events(CONVERSION_COMPLETED_QUEUE)) == 1
    assert [k for k in world.store.objects if k[0] == MP3S_BUCKET] == [(MP3S_BUCKET, job.id)]


def test_concurrent_duplicates_take_turns_and_complete_once(world: World) -> None:
    job = world.add_job(media(2.0, steps=5, step_s=0.05))
    outcomes: list[Outcome] = []
    threads = [threading.Thread(target=lambda: outcomes.append(world.converter.handle(world.delivery(job))))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == sorted([Outcome.DONE, Outcome.SKIPPED, Outcome.SKIPPED])
    assert len(world.events(CONVERSION_COMPLETED_QUEUE)) == 1
    assert world.leftovers() == []


def test_mp3_stored_by_a_killed_attempt_is_reused(world: World) -> None:
    job = world.add_job(media(3.0, exit=1))  # converting again would fail: it must not happen
    stored = world.store.put(MP3S_BUCKET, mp3_object_id(job.id), io.BytesIO(b"ID3..."),
                             filename="x.mp3", metadata={"job_id": job.id, "duration_s": 3.0, "bitrate": "192k"})

    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.DONE

    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None
    assert (done.mp3.size, done.mp3.duration_s, done.mp3.bitrate) == (stored.length, 3.0, "192k")


def test_progress_is_recorded_while_converting(world: World) -> None:
    job = world.add_job(media(4.0, steps=8, step_s=0.05))
    seen: list[int] = []
    original = world.jobs.set_progress

    def spy(job_id: str, progress: int) -> None:
        seen.append(progress)
        original(job_id, progress)

    world.jobs.set_progress = spy  # type: ignore[method-assign]
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert seen and all(0 <= p <= 99 for p in seen) and seen == sorted(seen)


def test_progress_write_failures_do_not_fail_the_conversion(world: World) -> None:
    job = world.add_job(media(2.0, steps=4, step_s=0.05))

    def broken(job_id: str, progress: int) -> None:
        raise DependencyUnavailable("The database is unavailable.")

    world.jobs.set_progress = broken  # type: ignore[method-assign]
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE


def test_job_deleted_during_conversion_leaves_no_mp3(world: World) -> None:
    job = world.add_job(media(2.0))
    original = world.jobs.mark_done

    def delete_first(job_id: str, mp3: Any) -> bool:
        world.jobs.mark_deleted(job_id, job.owner_id)
        return original(job_id, mp3)

    world.jobs.mark_done = delete_first  # type: ignore[method-assign]
    assert world.converter.handle(world.delivery(job)) is Outcome.SKIPPED
    assert world.store.stat(MP3S_BUCKET, mp3_object_id(job.id)) is None
    assert world.publisher.messages == []


# --- permanent failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("video", "code"),
    [
        (media(4.0, audio=False), "no_audio_stream"),
        (b"\x00\x01 not a media file", "undecodable"),
        (media(4.0, exit=1, stderr="Error while decoding stream #0:1"), "undecodable"),
        (media(4.0, out_duration=2.0), "truncated"),
        (media(4.0, out_duration=5.0), "duration_mismatch"),
        (media(4.0, out_codec="aac"), "undecodable"),
        (media(4 * 3600.0), "too_long"),
        (media(4.0, fmt="hls"), "container_not_allowed"),
    ],
    ids=["no-audio", "not-media", "ffmpeg-error", "short-output", "long-output", "not-mp3-output",
         "too-long", "playlist"],
)
def test_permanent_failures_fail_the_job_once_and_are_acked(world: World, video: bytes, code: str) -> None:
    job = world.add_job(video)

    assert world.converter.handle(world.delivery(job)) is Outcome.FAILED

    failed = world.jobs.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error_code == code
    assert failed.error_message
    [event] = world.events(CONVERSION_FAILED_QUEUE)
    assert event["error"] == {"code": code, "message": failed.error_message}
    assert world.events(CONVERSION_COMPLETED_QUEUE) == []
    assert world.store.stat(MP3S_BUCKET, mp3_object_id(job.id)) is None
    assert world.leftovers() == []
    # a redelivery changes nothing and publishes nothing more
    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.SKIPPED
    assert len(world.publisher.messages) == 1


def test_missing_video_is_a_permanent_failure(world: World) -> None:
    job = world.add_job(media(1.0))
    del world.store.objects[(VIDEOS_BUCKET, job.video_id)]
    assert world.converter.handle(world.delivery(job)) is Outcome.FAILED
    failed = world.jobs.get(job.id)
    assert failed is not None and failed.error_code == "source_missing"


def test_invalid_bitrate_is_a_permanent_failure(world: World) -> None:
    job = world.add_job(media(1.0), bitrate="lots")
    assert world.converter.handle(world.delivery(job)) is Outcome.FAILED
    failed = world.jobs.get(job.id)
    assert failed is not None and failed.error_code == "invalid_options"


def test_slow_conversion_is_stopped_at_its_own_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vid2mp3.convert.service.conversion_timeout_s", lambda _d: 0.5)
    job = world.add_job(media(2.0, steps=50, step_s=0.1))
    assert world.converter.handle(world.delivery(job)) is Outcome.FAILED
    failed = world.jobs.get(job.id)
    assert failed is not None and failed.error_code == "conversion_timeout"
    assert world.leftovers() == []


# --- transient failures, retries and their end ---------------------------------------------------------


def test_running_out_of_invocation_time_is_transient(world: World) -> None:
    job = world.add_job(media(2.0, steps=50, step_s=0.1))
    with pytest.raises(failures.Transient):
        world.converter.handle(world.delivery(job), remaining_s=RESERVE_S + 0.5)
    current = world.jobs.get(job.id)
    assert current is not None and current.status == "converting"
    assert world.publisher.messages == [] and world.leftovers() == []


def test_ffmpeg_killed_by_a_signal_is_transient(world: World) -> None:
    job = world.add_job(media(2.0, signal=9))
    with pytest.raises(failures.Transient):
        world.converter.handle(world.delivery(job))
    assert world.leftovers() == []


@pytest.mark.parametrize("down", ["store", "jobs", "lock"])
def test_unavailable_dependency_raises_for_redelivery(world: World, down: str) -> None:
    job = world.add_job(media(1.0))
    getattr(world, down).available = False
    with pytest.raises(DependencyUnavailable):
        world.converter.handle(world.delivery(job, count=2))
    getattr(world, down).available = True
    assert world.publisher.messages == []
    # the redelivery succeeds
    assert world.converter.handle(world.delivery(job, count=3)) is Outcome.DONE


def test_last_delivery_with_a_transient_failure_marks_retries_exhausted(world: World) -> None:
    job = world.add_job(media(1.0))
    world.store.available = False  # the video cannot be read
    limit = world.converter.delivery_limit

    assert world.converter.handle(world.delivery(job, count=limit)) is Outcome.EXHAUSTED

    failed = world.jobs.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error_code == "retries_exhausted"
    [event] = world.events(CONVERSION_FAILED_QUEUE)
    assert event["error"]["code"] == "retries_exhausted"


def test_earlier_deliveries_raise_rather_than_give_up(world: World) -> None:
    job = world.add_job(media(1.0))
    world.store.available = False
    for count in (None, 0, 1, world.converter.delivery_limit - 1):
        with pytest.raises(DependencyUnavailable):
            world.converter.handle(world.delivery(job, count=count))
    current = world.jobs.get(job.id)
    assert current is not None and current.status == "converting"


def test_last_delivery_when_even_marking_fails_raises_for_the_dead_letter_queue(world: World) -> None:
    job = world.add_job(media(1.0))
    world.jobs.available = False
    with pytest.raises(DependencyUnavailable):
        world.converter.handle(world.delivery(job, count=world.converter.delivery_limit))
    # from the dead-letter queue, once the database is back
    world.jobs.available = True
    dead = world.delivery(job, count=0, queue=f"{VIDEO_CONVERSION_QUEUE}.dlq")
    assert world.converter.handle(dead) is Outcome.EXHAUSTED
    failed = world.jobs.get(job.id)
    assert failed is not None and failed.error_code == "retries_exhausted"
    assert len(world.events(CONVERSION_FAILED_QUEUE)) == 1
    # the dead letter redelivered: no second event
    assert world.converter.handle(dead) is Outcome.SKIPPED
    assert len(world.events(CONVERSION_FAILED_QUEUE)) == 1


def test_dead_letter_removes_what_a_killed_upload_left(world: World) -> None:
    job = world.add_job(media(1.0))
    world.jobs.start_conversion(job.id)
    world.store.objects[(MP3S_BUCKET, mp3_object_id(job.id))] = (
        StoredObject(mp3_object_id(job.id), "x.mp3", 3, {}), b"ID3")
    dead = world.delivery(job, queue=f"{VIDEO_CONVERSION_QUEUE}.dlq")
    assert world.converter.handle(dead) is Outcome.EXHAUSTED
    assert world.store.stat(MP3S_BUCKET, mp3_object_id(job.id)) is None


def test_dead_letter_of_a_finished_job_changes_nothing(world: World) -> None:
    job = world.add_job(media(1.0))
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    dead = world.delivery(job, queue=f"{VIDEO_CONVERSION_QUEUE}.dlq")
    assert world.converter.handle(dead) is Outcome.SKIPPED
    done = world.jobs.get(job.id)
    assert done is not None and done.status == "done"
    assert world.events(CONVERSION_FAILED_QUEUE) == []


def test_publish_failure_after_done_is_retried_then_logged(world: World) -> None:
    job = world.add_job(media(1.0))
    world.publisher.available = False
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    done = world.jobs.get(job.id)
    assert done is not None and done.status == "done"


def test_invalid_message_is_dropped(world: World) -> None:
    for body in (b"not json", b"[]", b'{"job_id": "nope"}'):
        delivery = Delivery(queue=VIDEO_CONVERSION_QUEUE, body=body)
        assert world.converter.handle(delivery) is Outcome.INVALID


def test_unknown_job_is_skipped(world: World) -> None:
    delivery = Delivery(queue=VIDEO_CONVERSION_QUEUE, body=json.dumps({"job_id": str(uuid.uuid4())}).encode())
    assert world.converter.handle(delivery) is Outcome.SKIPPED


def test_leftovers_of_a_killed_attempt_are_removed(world: World) -> None:
    job = world.add_job(media(1.0))
    stale = world.work_root / "vid2mp3-convert" / job.id
    stale.mkdir(parents=True)
    (stale / "source").write_bytes(b"half a video")
    world.store.objects[(MP3S_BUCKET, "unrelated")] = world.store.objects[(VIDEOS_BUCKET, job.video_id)]
    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.DONE
    assert world.leftovers() == []
    assert os.path.isdir(world.work_root / "vid2mp3-convert")


# --- streamed input (vid2mp3.convert.source) -----------------------------------------------------------


class FlakyStore(InMemoryObjectStore):
    """Whole-object reads (the streamed ones) yield `pieces` pieces, then fail as the store going away,
    or wait `delay_s` before each piece."""

    def __init__(self, *, fail_after: int | None = None, delay_s: float = 0.0) -> None:
        super().__init__()
        self.fail_after, self.delay_s = fail_after, delay_s

    def read(self, bucket: str, object_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        data = b"".join(super().read(bucket, object_id, start, end))
        if start or end is not None:  # the inspection's ranged reads
            return iter([data])

        def pieces() -> Iterator[bytes]:
            for n, i in enumerate(range(0, len(data), 16)):
                if self.fail_after is not None and n >= self.fail_after:
                    raise DependencyUnavailable("The object store is unavailable.")
                time.sleep(self.delay_s)
                yield data[i:i + 16]
        return pieces()


def logger_of(world: World) -> RecordingLogger:
    assert isinstance(world.converter.logger, RecordingLogger)
    return world.converter.logger


def test_a_streamable_video_is_piped_into_ffmpeg(world: World) -> None:
    log = world.tmp / "argv.json"
    video, summary = mkv(4.0, argv_log=str(log))
    job = world.add_job(video, summary=summary)

    assert world.converter.handle(world.delivery(job)) is Outcome.DONE

    assert logger_of(world).inputs() == ["pipe"]
    argv = json.loads((world.tmp / "argv.json.piped").read_text())
    assert argv[argv.index("-i") + 1] == "pipe:0" and argv[argv.index("-f") + 1] == "matroska"
    assert {"-xerror", "-nostdin"} <= set(argv) and argv[argv.index("-protocol_whitelist") + 1] == "file,pipe"
    assert not log.exists()  # never converted from a file
    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None and abs(done.mp3.duration_s - 4.0) < 0.05
    assert len(world.events(CONVERSION_COMPLETED_QUEUE)) == 1 and world.leftovers() == []


def test_a_streamed_mp3_source_is_copied(world: World) -> None:
    log = world.tmp / "argv.json"
    video, summary = mkv(3.0, codec="mp3", argv_log=str(log))
    job = world.add_job(video, summary=summary)
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert logger_of(world).inputs() == ["pipe"]
    argv = json.loads((world.tmp / "argv.json.piped").read_text())
    assert argv[argv.index("-c:a") + 1] == "copy" and argv[argv.index("-i") + 1] == "pipe:0"
    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None and done.mp3.bitrate == "128k"


def test_without_the_uploads_summary_the_video_is_spooled(world: World) -> None:
    video, _summary = mkv(2.0)
    job = world.add_job(video)
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert logger_of(world).inputs() == ["spool"]


@pytest.mark.parametrize("piped", [{"out_duration": 2.0}, {"exit": 1}, {"out_codec": "aac"}],
                         ids=["short", "error", "not-mp3"])
def test_a_failed_streamed_conversion_is_redone_from_the_spool(world: World, piped: dict[str, Any]) -> None:
    video, summary = mkv(4.0, piped=piped)
    job = world.add_job(video, summary=summary)

    assert world.converter.handle(world.delivery(job)) is Outcome.DONE

    assert logger_of(world).inputs() == ["pipe", "spool"]
    warnings = [m for level, m, _ in logger_of(world).records if level == "WARNING"]
    assert warnings == ["streamed conversion failed; converting from a spooled copy"]
    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None and abs(done.mp3.duration_s - 4.0) < 0.05
    assert len(world.events(CONVERSION_COMPLETED_QUEUE)) == 1 and world.leftovers() == []


def test_the_spool_has_the_last_word(world: World) -> None:
    video, summary = mkv(4.0, out_duration=2.0)  # short both ways: the file is cut
    job = world.add_job(video, summary=summary)

    assert world.converter.handle(world.delivery(job)) is Outcome.FAILED

    assert logger_of(world).inputs() == ["pipe", "spool"]
    failed = world.jobs.get(job.id)
    assert failed is not None and failed.error_code == "truncated"
    assert len(world.events(CONVERSION_FAILED_QUEUE)) == 1 and world.leftovers() == []


def test_a_summary_that_disagrees_with_the_file_is_caught_by_the_spool(world: World) -> None:
    video, summary = mkv(4.0)
    job = world.add_job(video, summary=summary | {"audio_duration_s": 9.0})
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert logger_of(world).inputs() == ["pipe", "spool"]
    done = world.jobs.get(job.id)
    assert done is not None and done.mp3 is not None and abs(done.mp3.duration_s - 4.0) < 0.05


def test_the_store_failing_mid_stream_is_transient(tmp_path: Path, world: World) -> None:
    store = FlakyStore(fail_after=3)
    world.converter.store = store
    world.store = store
    video, summary = mkv(4.0, steps=20, step_s=0.05)
    job = world.add_job(video, summary=summary)

    with pytest.raises(DependencyUnavailable):
        world.converter.handle(world.delivery(job))

    assert logger_of(world).inputs() == ["pipe"]  # not retried from the spool: the store is down
    current = world.jobs.get(job.id)
    assert current is not None and current.status == "converting"
    assert world.publisher.messages == [] and world.leftovers() == []


def test_a_timeout_spent_waiting_for_the_store_is_transient(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vid2mp3.convert.service.conversion_timeout_s", lambda _d: 0.5)
    store = FlakyStore(delay_s=0.2)
    world.converter.store = store
    world.store = store
    video, summary = mkv(2.0)
    job = world.add_job(video, summary=summary)
    with pytest.raises(failures.Transient, match="store was too slow"):
        world.converter.handle(world.delivery(job))
    assert world.publisher.messages == [] and world.leftovers() == []


# --- the public service (issue 13): the source goes, webhooks, metrics, a deleted account -------------


def test_the_source_goes_once_the_mp3_is_committed_and_a_redelivery_does_not_need_it(world: World) -> None:
    from vid2mp3.convert.metrics import RecordedMetrics

    world.converter.metrics = metrics = RecordedMetrics()
    job = world.add_job(media(2.0))
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert world.store.stat(VIDEOS_BUCKET, job.video_id) is None
    done = world.jobs.get(job.id)
    assert done is not None and done.source_removed_at is not None and done.expires_at is not None
    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.SKIPPED
    names = [name for name, _, _ in metrics.records]
    assert names == ["ConversionsStarted", "ConversionSeconds", "BytesIn", "BytesOut", "ConversionsDone"]
    assert dict((n, v) for n, v, _ in metrics.records)["BytesIn"] == job.size
    [event] = world.events(CONVERSION_COMPLETED_QUEUE)
    assert event["expires_at"] == done.expires_at.isoformat()  # the email says until when


def test_keep_source_keeps_the_video(world: World) -> None:
    world.converter.keep_source = True
    job = world.add_job(media(2.0))
    assert world.converter.handle(world.delivery(job)) is Outcome.DONE
    assert world.store.stat(VIDEOS_BUCKET, job.video_id) is not None


def test_a_committed_mp3_is_reused_when_the_source_is_already_gone(world: World) -> None:
    job = world.add_job(media(3.0))
    world.store.put(MP3S_BUCKET, mp3_object_id(job.id), io.BytesIO(b"ID3..."),
                    filename="x.mp3", metadata={"job_id": job.id, "duration_s": 3.0, "bitrate": "192k"})
    world.store.delete(VIDEOS_BUCKET, job.video_id)
    assert world.converter.handle(world.delivery(job, count=1)) is Outcome.DONE


def test_a_job_with_a_callback_url_goes_to_the_webhook_queue_too(world: World) -> None:
    from dataclasses import replace

    from vid2mp3.convert.metrics import RecordedMetrics
    from vid2mp3.queue.topology import WEBHOOK_QUEUE

    world.converter.metrics = metrics = RecordedMetrics()
    good = world.add_job(media(2.0))
    bad = world.add_job(media(2.0, audio=False))
    for job in (good, bad):
        row = world.jobs.rows[job.id]
        row.job = replace(row.job, callback_url="https://hooks.example.com/x")
        world.converter.handle(world.delivery(job))
    assert [(m["job_id"], m["kind"]) for m in world.events(WEBHOOK_QUEUE)] == [(good.id, "completed"),
                                                                               (bad.id, "failed")]
    assert ("ConversionsFailed", 1, {"reason": "no_audio_stream"}) in metrics.records


def test_a_conversion_of_an_account_deleted_meanwhile_writes_nothing_back(world: World) -> None:
    job = world.add_job(media(2.0, steps=5, step_s=0.05))
    original = world.jobs.set_progress
    deleted: list[bool] = []

    def delete_account_meanwhile(job_id: str, progress: int) -> None:
        if not deleted:
            deleted.append(bool(world.jobs.mark_owner_deleted(job.owner_id)))
        original(job_id, progress)

    world.jobs.set_progress = delete_account_meanwhile  # type: ignore[method-assign]
    assert world.converter.handle(world.delivery(job)) is Outcome.SKIPPED
    assert deleted == [True]
    assert world.store.stat(MP3S_BUCKET, mp3_object_id(job.id)) is None
    assert world.publisher.messages == []
    assert world.jobs.rows[job.id].job.status == "converting" and world.jobs.get(job.id) is None
