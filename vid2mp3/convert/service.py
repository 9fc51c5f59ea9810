"""The conversion use case: one delivery of a job's message in, one committed MP3 (or a failed job) out.

For a message on video_conversion_queue, under the job's lock (vid2mp3.convert.lock):

1. `start_conversion` moves the job to `converting`; a job already done, failed or deleted is skipped.
2. An MP3 an earlier attempt committed (killed after the upload, before `mark_done`) is reused.
3. Otherwise, in a per-job temporary directory (vid2mp3.convert.workspace): decide how ffmpeg reads
   the video (vid2mp3.convert.source): streamed from GridFS into its standard input while it converts
   (the audio track of an MP4 cut out by its index, or the bytes as they are for containers read
   front to back), or spooled to a seekable file in chunks and probed there; plan
   (vid2mp3.convert.plan), run ffmpeg with a time limit and progress (vid2mp3.convert.runner), verify
   the written MP3 (vid2mp3.convert.verify), and stream it into the `mp3s` bucket under the job's id.
   A streamed conversion that fails in any way streaming could cause (ffmpeg's error, a short or long
   output, a layout surprise) is done once more from the spool, whose verdict is final.
4. `mark_done` records the MP3; only the call that made the job done publishes conversion_completed.

Failures (vid2mp3.convert.failures):

- permanent (PermanentFailure): `mark_failed` with the code and message; only the call that made the
  job failed publishes conversion_failed; the message is acked.
- anything else is transient: it propagates, the event source redelivers. On the message's last
  allowed delivery (`x-delivery-count` has reached the delivery limit) the job is marked failed with
  `retries_exhausted` instead, and conversion_failed is published, because the broker will not
  deliver it again. If even that fails (the database is down), the error propagates, the broker
  dead-letters the message into `video_conversion_queue.dlq`, and a delivery from there marks the job
  `retries_exhausted` once the database is back (`handle` with a dead-lettered delivery). The same
  path catches a last attempt that never got to run its error handling (SIGKILL, invocation timeout).

The MP3's GridFS id is the job id (what DELETE /videos/{id} removes too). The lock makes concurrent
duplicates take turns; the fixed id makes sequential ones find the MP3 already there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from vid2mp3.convert import failures
from vid2mp3.convert.early import EarlyMp3
from vid2mp3.convert.events import ConversionRequest, Delivery, InvalidMessage, parse_request
from vid2mp3.convert.failures import Transient
from vid2mp3.convert.lock import JobLock
from vid2mp3.convert.metrics import ConversionMetrics, NoMetrics
from vid2mp3.convert.plan import Plan, kbps_label, plan_conversion
from vid2mp3.convert.runner import ProgressReporter, RunResult, run_ffmpeg
from vid2mp3.convert.source import InputChoice, InputMode, Prefetch, ReadAhead, StreamedInput, choose_input
from vid2mp3.convert.verify import Mp3Facts, check_output, classify_run, measure_mp3
from vid2mp3.convert.workspace import job_workspace
from vid2mp3.errors import AppError, DependencyUnavailable, PermanentFailure
from vid2mp3.jobs import FinishedQueues, Job, JobRepository, Mp3Info, finished_messages
from vid2mp3.media.probe import MediaInfo, probe, summary_track
from vid2mp3.media.tracks import TrackChoice, parse_track_choice
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET, ObjectStore
from vid2mp3.queue import Publisher
from vid2mp3.queue.topology import (
    CONVERSION_COMPLETED_QUEUE,
    CONVERSION_FAILED_QUEUE,
    DEFAULT_DELIVERY_LIMIT,
    WEBHOOK_QUEUE,
)

# Time limits. A conversion may take TIMEOUT_BASE_S plus its duration / MIN_SPEED_X: slower than that
# the file is refused (conversion_timeout). Bare ffmpeg runs at 80-180x realtime on two cores; 15x
# gives a 3-hour file 780 s, inside Lambda's 900 s. RESERVE_S of the invocation is kept for
# verifying, storing and recording the result.
TIMEOUT_BASE_S = 60.0
MIN_SPEED_X = 15.0
RESERVE_S = 60.0
LOCK_WAIT_S = 900.0  # without an invocation deadline (tests, scripts)
PUBLISH_ATTEMPTS = 3
# Permanent failures of a *streamed* conversion that a seekable input might not have: it is redone from
# the spool (vid2mp3.convert.source). A timeout or bad options would fail the same way: not retried.
STREAM_SUSPECT_CODES = frozenset({failures.UNDECODABLE, failures.TRUNCATED, failures.DURATION_MISMATCH})
# A streamed run that hit its time limit while the feeder spent this share of it waiting for GridFS was
# slowed by the store, not by the file: transient, not conversion_timeout.
STORE_BOUND_SHARE = 0.25


class Outcome(StrEnum):
    DONE = "done"  # this delivery made the job done
    FAILED = "failed"  # this delivery made the job failed (a permanent failure)
    EXHAUSTED = "retries_exhausted"  # this delivery marked the job failed: no more deliveries
    SKIPPED = "skipped"  # nothing to do: the job is finished, deleted or unknown
    INVALID = "invalid"  # not a conversion message: dropped


def conversion_timeout_s(duration_s: float) -> float:
    return TIMEOUT_BASE_S + max(0.0, duration_s) / MIN_SPEED_X


def mp3_object_id(job_id: str) -> str:
    """The MP3's GridFS id: fixed per job, so a second upload of it raises FileExistsError."""
    return job_id


@dataclass
class Converter:
    jobs: JobRepository
    store: ObjectStore
    publisher: Publisher
    lock: JobLock
    ffmpeg: str
    ffprobe: str
    work_root: Path
    max_duration_s: float
    logger: Any = field(default_factory=lambda: logging.getLogger("vid2mp3.convert"))
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    completed_queue: str = CONVERSION_COMPLETED_QUEUE
    failed_queue: str = CONVERSION_FAILED_QUEUE
    webhook_queue: str = WEBHOOK_QUEUE
    # KEEP_SOURCE: keep the video once its MP3 is committed (off: removed then).
    keep_source: bool = False
    metrics: ConversionMetrics = field(default_factory=NoMetrics)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    progress_interval_s: float = 1.0
    # job id -> the MP3 its verified ffmpeg run already sent in part, until _store completes it
    _early: dict[str, EarlyMp3] = field(default_factory=dict, init=False, repr=False)

    # --- entry point ---------------------------------------------------------------------------------

    def handle(self, delivery: Delivery, *, remaining_s: float | None = None) -> Outcome:
        """Handle one delivery; returns how it ended, raises when it must be redelivered.

        `remaining_s`: the invocation's remaining time (context.get_remaining_time_in_millis()/1000).
        """
        try:
            request = parse_request(delivery)
        except InvalidMessage as exc:
            self.logger.error("message dropped: not a conversion message",
                              extra={"queue": delivery.queue, "reason": str(exc),
                                     "body": delivery.body[:300].decode("utf-8", "replace")})
            return Outcome.INVALID
        deadline = None if remaining_s is None else self.clock() + remaining_s - RESERVE_S
        if delivery.dead_lettered:
            return self._dead_lettered(request, deadline)
        try:
            return self._convert(request, deadline)
        except Exception as exc:  # transient: redeliver, unless this was the last delivery
            if isinstance(exc, failures.LockBusy) or not delivery.is_last(self.delivery_limit):
                raise
            self.logger.warning("last delivery failed; marking the job failed",
                                extra={"job_id": request.job_id, "error": _describe(exc),
                                       "delivery_count": delivery.delivery_count})
            try:
                with self.lock.hold(request.job_id, self._lock_wait(deadline)):
                    return self._exhaust(request.job_id)
            except Exception:
                raise exc from None  # dead-lettered; the .dlq delivery will mark it

    # --- the conversion ------------------------------------------------------------------------------

    def _lock_wait(self, deadline: float | None) -> float:
        return LOCK_WAIT_S if deadline is None else max(1.0, deadline - self.clock())

    def _convert(self, request: ConversionRequest, deadline: float | None) -> Outcome:
        with self.lock.hold(request.job_id, self._lock_wait(deadline)):
            job = self.jobs.start_conversion(request.job_id)
            if job is None:
                self.logger.info("job skipped: already finished, deleted or unknown",
                                 extra={"job_id": request.job_id})
                return Outcome.SKIPPED
            started = self.clock()
            self.metrics.started()
            try:
                mp3 = self._committed_mp3(job)
                if mp3 is None:
                    mp3 = self._produce(job, deadline)
                    self.metrics.converted(self.clock() - started, bytes_in=job.size, bytes_out=mp3.size)
            except PermanentFailure as failure:
                self.logger.info("conversion failed", extra={"job_id": job.id, "code": failure.code,
                                                             "reason": failure.message})
                return Outcome.FAILED if self._fail(job, failure.code, failure.message) else Outcome.SKIPPED
            return self._finish(job, mp3)

    def _committed_mp3(self, job: Job) -> Mp3Info | None:
        """The MP3 an earlier attempt stored (and verified) before it could record it, if any."""
        found = self.store.stat(MP3S_BUCKET, mp3_object_id(job.id))
        if found is None:
            return None
        meta: Mapping[str, Any] = found.metadata or {}
        try:
            if meta.get("job_id") != job.id:
                raise ValueError("not this job's")
            info = Mp3Info(found.id, found.length, float(meta["duration_s"]), str(meta["bitrate"]))
        except (KeyError, TypeError, ValueError):
            self.logger.warning("unusable stored MP3 replaced", extra={"job_id": job.id})
            self.store.delete(MP3S_BUCKET, found.id)
            return None
        self.logger.info("reusing the MP3 an earlier attempt stored", extra={"job_id": job.id})
        return info

    def _produce(self, job: Job, deadline: float | None) -> Mp3Info:
        try:
            return self._produce_in_workspace(job, deadline)
        finally:
            left = self._early.pop(job.id, None)  # a run that failed, or whose MP3 was not stored whole
            if left is not None:
                left.discard()

    def _produce_in_workspace(self, job: Job, deadline: float | None) -> Mp3Info:
        with job_workspace(self.work_root, job.id) as workdir:
            output = workdir / "audio.mp3"
            choice = self._choose_input(job)
            converted: tuple[Plan, Mp3Facts] | None = None
            if choice.stream is not None:
                try:
                    converted = self._convert_input(job, choice, choice.stream.info, None, output, deadline)
                except (DependencyUnavailable, Transient):
                    raise
                except PermanentFailure as failure:
                    if failure.code not in STREAM_SUSPECT_CODES:
                        raise
                    error = f"{failure.code}: {failure.message}"
                except Exception as exc:  # a layout surprise, the video gone meanwhile, a bug: the spool decides
                    error = _describe(exc)
                if converted is None:
                    self.logger.warning("streamed conversion failed; converting from a spooled copy",
                                        extra={"job_id": job.id, "input": str(choice.mode), "error": error})
                    output.unlink(missing_ok=True)
                    choice = InputChoice(InputMode.SPOOL, f"fallback after {choice.mode} failed: {error}")
            if converted is None:
                source = workdir / "source"
                self._spool(job.video_id, source)
                converted = self._convert_input(job, choice, self._probe(source, job), source, output, deadline)
            plan, facts = converted
            size = output.stat().st_size
            bitrate = plan.bitrate or kbps_label(size * 8 / facts.duration_s)
            return self._store(job, Mp3Info(mp3_object_id(job.id), size, facts.duration_s, bitrate))

    def _choose_input(self, job: Job) -> InputChoice:
        try:
            return choose_input(self.store, job, max_duration_s=self.max_duration_s)
        except DependencyUnavailable:
            raise
        except Exception as exc:  # never let the fast path's doubts fail a job: the spool decides
            self.logger.warning("input layout not understood; spooling",
                                extra={"job_id": job.id, "error": _describe(exc)})
            return InputChoice(InputMode.SPOOL, f"layout check failed: {_describe(exc)}")

    def _convert_input(self, job: Job, choice: InputChoice, info: MediaInfo, source: Path | None, output: Path,
                       deadline: float | None) -> tuple[Plan, Mp3Facts]:
        """Plan, run and verify the conversion of `info` (from `source`, or streamed: None) into `output`."""
        try:
            plan = plan_conversion(info, ffmpeg=self.ffmpeg, source=source, output=output,
                                   bitrate=job.bitrate, filename=job.filename,
                                   max_duration_s=self.max_duration_s)
        except ValueError as exc:  # the upload validates the bitrate; a bad one never converts
            raise failures.permanent(failures.INVALID_OPTIONS) from exc
        return plan, self._transcode(job, plan, output, deadline, choice)

    def _spool(self, video_id: str, path: Path) -> None:
        """Copy the video to `path` a GridFS chunk at a time (never the whole file in memory)."""
        try:
            chunks = self.store.read(VIDEOS_BUCKET, video_id)
        except KeyError:
            raise failures.permanent(failures.SOURCE_MISSING) from None
        with open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def _probe(self, source: Path, job: Job) -> MediaInfo:
        """The spooled copy probed again, taking the audio track the upload chose (the user's choice or
        the usual rule, recorded in the job's summary); for a job without one, the user's choice it
        carries, else the usual rule."""
        extra = job.extra if isinstance(job.extra, Mapping) else {}
        position = summary_track(extra.get("media"))
        # A resumable upload the upload function could not decide on carries the user's choice itself.
        track = TrackChoice(index=position) if position is not None else _chosen_track(extra.get("audio_track"))
        try:
            return probe(source, ffprobe=self.ffprobe, max_duration_s=self.max_duration_s, track=track)
        except AppError as refusal:  # UnsupportedMedia / Unprocessable, with their stable codes
            raise failures.from_probe(refusal) from None

    def _transcode(self, job: Job, plan: Plan, output: Path, deadline: float | None,
                   choice: InputChoice) -> Mp3Facts:
        limit = conversion_timeout_s(plan.expected_duration_s)
        ours = True
        if deadline is not None and deadline - self.clock() < limit:
            limit, ours = max(0.0, deadline - self.clock()), False
        stream: StreamedInput | None = choice.stream
        self.logger.info("converting", extra={"job_id": job.id, "copy": plan.copy, "bitrate": plan.bitrate,
                                              "duration_s": round(plan.expected_duration_s, 3),
                                              "timeout_s": round(limit, 1), "input": str(choice.mode),
                                              "input_reason": choice.reason,
                                              "input_bytes": stream.size if stream else None})

        def write_progress(percent: int) -> None:
            self.jobs.set_progress(job.id, percent)

        def progress_failed(exc: Exception) -> None:
            self.logger.warning("progress not recorded", extra={"job_id": job.id, "error": _describe(exc)})

        with contextlib.ExitStack() as stack:
            stdin: Iterator[bytes] | None = None
            if stream is not None and plan.copy:  # the store is the bottleneck: keep it busy
                stdin = stack.enter_context(Prefetch(stream.open())).chunks()
            elif stream is not None:  # ffmpeg is: read the store ahead, out of the encoder's way
                stdin = stack.enter_context(ReadAhead(stream.open(), output.with_name("input.ahead"))).chunks()
            # Until _store completes it; a run that fails is discarded by _produce, or replaced (and its
            # chunks removed) by the spooled run after it.
            self._early[job.id] = stack.enter_context(
                EarlyMp3(self.store, MP3S_BUCKET, mp3_object_id(job.id), output))
            reporter = stack.enter_context(ProgressReporter(
                write_progress, plan.expected_duration_s, interval_s=self.progress_interval_s,
                on_error=progress_failed))
            result = run_ffmpeg(plan.argv, timeout_s=limit, on_progress=reporter.update, clock=self.clock,
                                stdin=stdin)
        if result.returncode != 0 or result.timed_out:
            self.logger.info("ffmpeg did not succeed", extra={
                "job_id": job.id, "returncode": result.returncode, "timed_out": result.timed_out,
                "elapsed_s": round(result.elapsed_s, 2), "input": str(choice.mode),
                "stderr": result.stderr[-2000:]})
        _check_store_bound(result)
        classify_run(result, timeout_was_ours=ours)
        # A copied stream may hold damaged frames: decode them. What libmp3lame wrote: count them.
        facts = check_output(measure_mp3(output, ffprobe=self.ffprobe, decode=plan.copy), plan.expected_duration_s)
        self.logger.info("converted", extra={"job_id": job.id, "elapsed_s": round(result.elapsed_s, 2),
                                             "duration_s": round(facts.duration_s, 3), "input": str(choice.mode),
                                             "input_wait_s": round(result.input_wait_s, 2)})
        return facts

    def _store(self, job: Job, mp3: Mp3Info) -> Mp3Info:
        """Complete in the `mp3s` bucket the verified MP3 its ffmpeg run already sent in part (EarlyMp3):
        the rest of its chunks, then the files document. Should this fail, _produce discards it all."""
        metadata = {"job_id": job.id, "content_type": "audio/mpeg", "duration_s": mp3.duration_s,
                    "bitrate": mp3.bitrate, "video_id": job.video_id}
        stored = self._early[job.id].finish(filename=_mp3_filename(job.filename), metadata=metadata)
        del self._early[job.id]
        return Mp3Info(stored.id, stored.length, mp3.duration_s, mp3.bitrate)

    def _finish(self, job: Job, mp3: Mp3Info) -> Outcome:
        if self.jobs.mark_done(job.id, mp3):
            self.logger.info("job done", extra={"job_id": job.id, "mp3_size": mp3.size,
                                                "duration_s": round(mp3.duration_s, 3)})
            self.metrics.done()
            # The email and the webhook first: removing a large video takes seconds (bench/e2e.py).
            self._publish_finished(self.jobs.get(job.id) or replace(job, status="done", mp3=mp3))
            self._remove_source(job)
            return Outcome.DONE
        current = self.jobs.get(job.id)
        if current is None or current.status != "done":  # deleted (or failed) meanwhile: no MP3 may stay
            self.store.delete(MP3S_BUCKET, mp3.object_id)
            self.logger.info("job finished elsewhere or deleted during its conversion; MP3 removed",
                             extra={"job_id": job.id, "status": current.status if current else "deleted"})
        return Outcome.SKIPPED

    # --- failing -------------------------------------------------------------------------------------

    def _remove_source(self, job: Job) -> None:
        """The MP3 is committed: the video goes, unless KEEP_SOURCE. A redelivery of this job finds it done
        and never reads the video again; should this fail, the job's expiry removes the video."""
        if self.keep_source:
            return
        try:
            self.store.delete(VIDEOS_BUCKET, job.video_id)
            self.jobs.mark_source_removed(job.id)
        except Exception as exc:  # best effort: the MP3 is there and the job done
            self.logger.warning("source video not removed; it goes when the job expires",
                                extra={"job_id": job.id, "error": _describe(exc)})

    def _fail(self, job: Job, code: str, message: str) -> bool:
        if not self.jobs.mark_failed(job.id, code, message):
            return False
        self.metrics.failed(code)
        self._publish_finished(self.jobs.get(job.id) or replace(job, status="failed", error_code=code,
                                                                 error_message=message))
        return True

    def _exhaust(self, job_id: str) -> Outcome:
        job = self.jobs.get(job_id)
        if job is None:
            return Outcome.SKIPPED
        if not self._fail(job, failures.RETRIES_EXHAUSTED, failures.MESSAGES[failures.RETRIES_EXHAUSTED]):
            return Outcome.SKIPPED
        self.logger.warning("job failed: retries exhausted", extra={"job_id": job_id})
        # Whatever a killed attempt left under the MP3's id (chunks without a files document) will not
        # be retried away now; the job is failed and we hold its lock, so none of it is anyone's.
        try:
            self.store.delete(MP3S_BUCKET, mp3_object_id(job_id))
        except Exception as exc:  # best effort: the store may be what failed
            self.logger.warning("partial MP3 not removed", extra={"job_id": job_id, "error": _describe(exc)})
        return Outcome.EXHAUSTED

    def _dead_lettered(self, request: ConversionRequest, deadline: float | None) -> Outcome:
        """The broker gave up on this message. Once no worker converts the job (the lock), a job still
        queued or converting is failed with `retries_exhausted`; a finished one is left alone."""
        with self.lock.hold(request.job_id, self._lock_wait(deadline)):
            return self._exhaust(request.job_id)

    def _publish_finished(self, job: Job) -> bool:
        """Publish what goes out for the finished job (its webhook's message, then the event notify reads)
        with confirms, retrying briefly. The state change that gates them is already committed, so a
        redelivery would not publish them again: a failure here is logged, not raised."""
        queues = FinishedQueues(self.completed_queue, self.failed_queue, self.webhook_queue)
        for queue, body in finished_messages(job, queues):
            if not self._publish(queue, body, job):
                # The job's event stays unconfirmed in the jobs table: the scheduled re-drive publishes
                # all of it again (vid2mp3.jobs.service.redrive); the receivers' records dedupe.
                return False
        with contextlib.suppress(DependencyUnavailable):
            self.jobs.mark_event_published(job.id)
        return True

    def _publish(self, queue: str, body: Mapping[str, Any], job: Job) -> bool:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                self.publisher.publish(queue, body, correlation_id=job.correlation_id)
            except DependencyUnavailable as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    self.logger.error("event not published; the re-drive will", extra={
                        "job_id": job.id, "queue": queue, "error": _describe(exc)})
                    return False
                self.sleep(float(attempt))
            else:
                return True
        return False


def _check_store_bound(result: RunResult) -> None:
    """A streamed run that timed out while mostly waiting for its input was slowed by the store."""
    if result.timed_out and result.input_wait_s > STORE_BOUND_SHARE * result.elapsed_s:
        raise Transient(f"reading the video from the store was too slow ({result.input_wait_s:.0f} s "
                        f"of {result.elapsed_s:.0f} s)")


def _mp3_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    return f"{stem or 'audio'}.mp3"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["Converter", "Outcome", "conversion_timeout_s", "mp3_object_id"]


def _chosen_track(value: Any) -> TrackChoice | None:
    try:
        return parse_track_choice(value) if isinstance(value, str) else None
    except AppError:
        return None  # validated at upload; a malformed value here takes the usual rule
