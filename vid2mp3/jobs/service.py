"""The upload function's use cases: upload, list, status, download, delete, and the re-drive.

Every dependency comes in as a parameter (:class:`JobsDeps`); nothing here reads the environment or
opens a connection of its own.

Upload order, chosen so that a crash at any point leaves nothing a user can see half-done:

1. spool the multipart body to a temporary file (413 past the limit, nothing stored);
2. probe it (415/422, nothing stored);
3. write the video to GridFS (aborted on error: no chunks left);
4. insert the job row (on error the video is deleted again);
5. publish the conversion message with confirms. If the broker does not confirm, the job stays
   `queued` with `published_at` NULL and the client still gets 202; the re-drive publishes it later.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vid2mp3.auth.identity import Identity, TokenVersions
from vid2mp3.errors import (
    AppError,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from vid2mp3.exports import Exporter, export_key
from vid2mp3.jobs import FinishedQueues, Job, JobRepository, conversion_message, finished_messages
from vid2mp3.limits import DELETE_BUDGET_S
from vid2mp3.media.binaries import find_ffprobe
from vid2mp3.media.probe import MediaInfo, probe
from vid2mp3.media.tracks import TrackChoice, parse_track_choice
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET, ObjectStore
from vid2mp3.queue import Publisher
from vid2mp3.queue.topology import (
    CONVERSION_COMPLETED_QUEUE,
    CONVERSION_FAILED_QUEUE,
    VIDEO_CONVERSION_QUEUE,
    WEBHOOK_QUEUE,
)
from vid2mp3.quotas.service import Quotas, check_upload
from vid2mp3.settings import BITRATES, Settings
from vid2mp3.webhooks.targets import ForbiddenTarget, Resolver, check_callback_url, parse_allowed_hosts, system_resolver

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

    from vid2mp3.webhooks.records import DeliveryLog


__all__ = [
    "DEFAULT_BITRATE",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REDRIVE_AFTER_S",
    "TOMBSTONE_TTL_S",
    "JobsDeps",
    "Page",
    "RedriveResult",
    "content_type_for",
    "decode_cursor",
    "delete_video",
    "encode_cursor",
    "get_video",
    "list_videos",
    "media_prober",
    "parse_bitrate",
    "redrive",
    "refuse_job",
    "register_job",
    "upload_video",
    "video_location",
]

DEFAULT_BITRATE = "192k"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Multipart framing and the small fields around the file: a body longer than the file limit plus
# this is refused before it is parsed.
BODY_OVERHEAD = 64 * 1024
# A queued job whose message was not confirmed is published again after this long. Longer than the
# upload function's timeout (120 s), so the upload that created the job has finished with it.
REDRIVE_AFTER_S = 180.0
# A deleted job's row stays this long as a tombstone, so that DELETE repeated by its owner is 204
# again (idempotent); then the re-drive removes it (and, once more, its objects).
TOMBSTONE_TTL_S = 3600.0
# Time the scheduled function may spend on one tombstone's objects (its timeout is 60 s).
PURGE_BUDGET_S = 20.0

# What to record as the video's type when the client sent none (or a generic one).
_TYPE_BY_DEMUXER = {
    "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4",
    "matroska,webm": "video/x-matroska",
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "mpegts": "video/mp2t",
    "mpeg": "video/mpeg",
    "asf": "video/x-ms-asf",
    "ogg": "application/ogg",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}
_GENERIC_TYPES = {"application/octet-stream", "binary/octet-stream", "application/unknown"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class JobsDeps:
    settings: Settings
    jobs: JobRepository
    store: ObjectStore
    publisher: Publisher
    logger: Logger
    probe: Prober  # the real one is media_prober's; unit tests hand in a fake
    clock: Callable[[], datetime] = _utcnow
    new_id: Callable[[], str] = _new_id
    # Export copies of MP3s too large to return through the API (vid2mp3.jobs.downloads); None: none
    # are made, and such MP3s are downloaded with Range requests only.
    exporter: Exporter | None = None
    queue: str = VIDEO_CONVERSION_QUEUE  # where conversion messages go (tests use a private one)
    completed_queue: str = CONVERSION_COMPLETED_QUEUE  # where the re-drive republishes finished-job events
    failed_queue: str = CONVERSION_FAILED_QUEUE
    webhook_queue: str = WEBHOOK_QUEUE
    # The account's quotas (vid2mp3.quotas); None: not applied (unit tests of other rules).
    quotas: Quotas | None = None
    # The webhook delivery records a job shows (GET /videos/{id}); None: none shown.
    webhooks: DeliveryLog | None = None
    # How callback URLs' hosts are resolved for the SSRF check (tests hand in their own).
    resolver: Resolver = system_resolver
    # The accounts' token versions: a request whose token was revoked (password changed, account
    # deleted) is refused at once (vid2mp3.auth.identity.check_session). None: not checked (unit tests).
    sessions: TokenVersions | None = None

    @property
    def finished_queues(self) -> FinishedQueues:
        return FinishedQueues(self.completed_queue, self.failed_queue, self.webhook_queue)


# The probe's time limit in a request: well inside API Gateway's 29 s.
PROBE_TIMEOUT_S = 15.0


class Prober(Protocol):
    """Probes a local file and checks it (vid2mp3.media.probe.probe with the settings' cap): `track` is
    the user's choice of audio track (None: the usual rule); `present`, for a partial copy, the byte ranges
    it holds (vid2mp3.media.partial). Raises UnsupportedMedia / Unprocessable, or PartialCopyUndecided."""

    def __call__(self, path: Path, track: TrackChoice | None = None,
                 present: Sequence[tuple[int, int]] | None = None) -> MediaInfo: ...


def media_prober(settings: Settings, ffprobe: str | None = None) -> Prober:
    """The real probe: ffprobe (found on first use: the re-drive never needs it) and the duration cap."""
    find = functools.cache(lambda: ffprobe or find_ffprobe(settings.ffprobe_path))

    def run(path: Path, track: TrackChoice | None = None,
            present: Sequence[tuple[int, int]] | None = None) -> MediaInfo:
        return probe(path, ffprobe=find(), max_duration_s=settings.max_duration_seconds, timeout_s=PROBE_TIMEOUT_S,
                     track=track, present=present)

    return run


# --- POST /videos ----------------------------------------------------------------------------------


def upload_video(
    d: JobsDeps,
    caller: Identity,
    body: Iterable[bytes],
    content_type: str,
    *,
    correlation_id: str,
    body_length: int | None = None,
) -> Job:
    """Store an uploaded video and queue its conversion; returns the new (queued) job."""
    from vid2mp3.multipart import spooled_upload  # the multipart parser: only this route's cold start pays

    max_bytes = d.settings.max_upload_bytes
    if body_length is not None and body_length > max_bytes + BODY_OVERHEAD:
        raise PayloadTooLarge(f"The upload is larger than the limit of {max_bytes} bytes.")
    with spooled_upload(body, content_type, max_bytes=max_bytes,
                        fields=("bitrate", "audio_track", "callback_url")) as form:
        upload = form.file
        if upload is None:
            raise InvalidInput("Send the video as a file in the multipart field `file`.", code="file_missing")
        bitrate = parse_bitrate(form.fields.get("bitrate"))
        track = parse_track_choice(form.fields.get("audio_track"))
        callback_url = parse_callback(d, form.fields.get("callback_url"))
        if upload.size == 0:
            raise InvalidInput("The file is empty.", code="empty_file")
        admit_upload(d, caller, upload.size)
        media = d.probe(upload.path, track)
        job_id, video_id, now = d.new_id(), d.new_id(), d.clock()
        filename = upload.filename or "video"
        content = content_type_for(upload.content_type, media)
        with open(upload.path, "rb") as source:
            d.store.put(
                VIDEOS_BUCKET, video_id, source, filename=filename,
                metadata={
                    "owner_id": caller.user_id, "job_id": job_id, "filename": filename,
                    "content_type": content, "size": upload.size, "sha256": upload.sha256,
                    "correlation_id": correlation_id, "uploaded_at": now,
                },
            )
    job = Job(
        id=job_id, owner_id=caller.user_id, owner_email=caller.email, filename=filename,
        content_type=content, size=upload.size, sha256=upload.sha256, video_id=video_id, bitrate=bitrate,
        correlation_id=correlation_id, created_at=now, updated_at=now, duration_s=media.audio_duration_s,
        extra={"media": media.summary()}, callback_url=callback_url,
    )
    return register_job(d, job)


def admit_upload(d: JobsDeps, caller: Identity, size: int) -> None:
    """Refuse an upload of `size` bytes over one of the caller's quotas (vid2mp3.quotas.service)."""
    if d.quotas is not None:
        check_upload(d.quotas, caller.user_id, size)


def parse_callback(d: JobsDeps, value: str | None) -> str | None:
    """A job's `callback_url` (a multipart field, a tus metadata key), checked as a delivery will check it;
    None when not given."""
    if value is None or not value.strip():
        return None
    try:
        return check_callback_url(value, parse_allowed_hosts(d.settings.webhook_allowed_hosts), d.resolver)
    except ForbiddenTarget as exc:
        raise InvalidInput(str(exc), code="invalid_callback_url") from None


def register_job(d: JobsDeps, job: Job, *, keep_video_on_error: bool = False) -> Job:
    """Record a job whose video is stored, and queue its conversion; returns the job as queued.

    When the row cannot be written the video is removed again, unless `keep_video_on_error` (a
    resumable upload's video stays with the upload, whose last part can be sent again)."""
    try:
        d.jobs.create(job)
    except BaseException:
        if not keep_video_on_error:
            _forget_video(d, job.video_id)
        raise
    d.logger.info("video stored", extra={"job_id": job.id, "video_id": job.video_id, "size": job.size,
                                          "format": (job.extra.get("media") or {}).get("format")})
    return _publish(d, job)


def refuse_job(d: JobsDeps, job: Job, refusal: AppError) -> Job:
    """Record a job whose video the probe refused once all of it was stored: it fails at once with the
    probe's error, exactly as a conversion failing would: conversion_failed goes out (so does the email),
    and the video stays with the job until the job is deleted, like any failed job's."""
    d.jobs.create(job)
    if d.jobs.mark_failed(job.id, refusal.code, refusal.message):
        failed = d.jobs.get(job.id) or replace(job, status="failed", error_code=refusal.code,
                                                error_message=refusal.message)
        try:
            for queue, message in finished_messages(failed, d.finished_queues):
                d.publisher.publish(queue, message, correlation_id=job.correlation_id)
            d.jobs.mark_event_published(job.id)
        except DependencyUnavailable:
            d.logger.warning("failure event not confirmed; the re-drive will publish it", extra={"job_id": job.id})
    d.logger.info("video refused after upload", extra={"job_id": job.id, "code": refusal.code})
    return d.jobs.get(job.id) or job


def _publish(d: JobsDeps, job: Job) -> Job:
    """Publish the conversion message; an unconfirmed publish leaves the job to the re-drive."""
    try:
        d.publisher.publish(d.queue, conversion_message(job), correlation_id=job.correlation_id)
    except DependencyUnavailable:
        d.logger.warning("conversion message not confirmed; the re-drive will publish it",
                         extra={"job_id": job.id})
        return job
    try:
        d.jobs.mark_published(job.id)
    except DependencyUnavailable:
        # Published but not recorded: the re-drive may publish it once more, and the converter
        # ignores a message for a job that is no longer queued.
        d.logger.warning("published, but the confirm could not be recorded", extra={"job_id": job.id})
        return job
    return replace(job, published_at=d.clock())


def _forget_video(d: JobsDeps, video_id: str) -> None:
    try:
        d.store.delete(VIDEOS_BUCKET, video_id)
    except DependencyUnavailable:
        d.logger.error("orphaned video after a failed job insert", extra={"video_id": video_id})


def content_type_for(declared: str, media: MediaInfo | None) -> str:
    """The video's type: the client's, unless it sent a generic one; then the probed container's."""
    if declared and declared not in _GENERIC_TYPES:
        return declared
    if media is None:
        return "application/octet-stream"
    return _TYPE_BY_DEMUXER.get(media.format_name, "application/octet-stream")


def parse_bitrate(value: str | None) -> str:
    """One of settings.BITRATES; "192" means "192k"; nothing means the default."""
    if value is None or not value.strip():
        return DEFAULT_BITRATE
    normalised = value.strip().lower()
    if normalised.isdigit():
        normalised += "k"
    if normalised not in BITRATES:
        raise InvalidInput(f"`bitrate` must be one of {', '.join(BITRATES)}.", code="invalid_bitrate")
    return normalised


def video_location(settings: Settings, job_id: str) -> str:
    return f"{settings.public_base_url}/videos/{job_id}"


# --- GET /videos, GET /videos/{id} ---------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next: str | None

    def to_api(self) -> dict[str, Any]:
        return {"items": [job.to_api() for job in self.items], "next": self.next}


def list_videos(d: JobsDeps, caller: Identity, *, limit: str | None = None, cursor: str | None = None) -> Page:
    """The caller's jobs, newest first; `cursor` is the `next` of the previous page."""
    n = _parse_limit(limit)
    after = decode_cursor(cursor) if cursor else None
    found = d.jobs.list_for_owner(caller.user_id, n + 1, after)
    items = found[:n]
    return Page(items, encode_cursor(items[-1]) if len(found) > n else None)


def _parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise InvalidInput(f"`limit` must be a whole number from 1 to {MAX_LIMIT}.", code="invalid_limit")
    return min(n, MAX_LIMIT)


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        created = datetime.fromisoformat(stamp)
        uuid.UUID(job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("`cursor` is not one this API gave out.", code="invalid_cursor") from None
    if created.tzinfo is None:
        raise InvalidInput("`cursor` is not one this API gave out.", code="invalid_cursor")
    return created, job_id


def get_video(d: JobsDeps, caller: Identity, job_id: str) -> Job:
    """The caller's job; NotFound for someone else's, an unknown, an expired or a malformed id alike."""
    job = d.jobs.get(job_id, caller.user_id)
    if job is None:
        raise NotFound("No such video.")
    return job


def show_video(d: JobsDeps, caller: Identity, job_id: str) -> dict[str, Any]:
    """GET /videos/{id}: the job, with its webhook deliveries when it has a callback URL."""
    from vid2mp3.webhooks.service import deliveries_for_api

    job = get_video(d, caller, job_id)
    body = job.to_api()
    hooks = deliveries_for_api(d.webhooks, job)
    if hooks is not None:
        body["webhook"] = dict(hooks)
    return body


# --- DELETE /videos/{id} --------------------------------------------------------------------------


def delete_video(d: JobsDeps, caller: Identity, job_id: str) -> None:
    """Remove the caller's job, its video and its MP3. Repeating it is fine (the row stays a while
    as a tombstone); someone else's or an unknown job is NotFound."""
    job = d.jobs.mark_deleted(job_id, caller.user_id)
    if job is None:
        raise NotFound("No such video.")
    # Within the request's budget; what a very large video leaves is removed with the tombstone.
    _remove_objects(d, job, budget_s=DELETE_BUDGET_S)
    d.logger.info("video deleted", extra={"job_id": job.id})


def _remove_objects(d: JobsDeps, job: Job, *, budget_s: float | None = None) -> bool:
    """Remove the job's video, MP3 and export copy; False when the video's chunks were not all removed
    within `budget_s` (everything is invisible already; call again to finish)."""
    store = d.store
    if d.exporter is not None:
        try:
            d.exporter.delete(export_key(job.id))
        except DependencyUnavailable:  # the bucket's lifecycle rule removes it within a day anyway
            d.logger.warning("export copy not removed now; it expires within a day", extra={"job_id": job.id})
    if job.mp3 is not None:
        store.delete(MP3S_BUCKET, job.mp3.object_id)
    # Also the conventional id of a job's MP3 (its job id), in case a conversion stored it and
    # lost the race with this delete before it could record it.
    store.delete(MP3S_BUCKET, job.id)
    return store.delete(VIDEOS_BUCKET, job.video_id, budget_s=budget_s)


# --- the re-drive (scheduled) ---------------------------------------------------------------------


@dataclass(frozen=True)
class RedriveResult:
    published: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def to_log(self) -> Mapping[str, Any]:
        return {"published": len(self.published), "unconfirmed": len(self.unconfirmed),
                "purged": len(self.purged), "events": len(self.events)}


def redrive(
    d: JobsDeps,
    *,
    older_than_s: float = REDRIVE_AFTER_S,
    tombstone_ttl_s: float = TOMBSTONE_TTL_S,
    limit: int = 100,
) -> RedriveResult:
    """Publish once more the jobs whose message the broker never confirmed, then purge tombstones.

    Each stranded job is claimed first (so two overlapping runs never publish the same job), and
    published again only after another `older_than_s` if this attempt is not confirmed either.
    """
    result = RedriveResult()
    for job in d.jobs.claim_unpublished(older_than_s, limit):
        try:
            d.publisher.publish(d.queue, conversion_message(job),
                                correlation_id=job.correlation_id)
        except DependencyUnavailable:
            result.unconfirmed.append(job.id)
            d.logger.warning("re-drive: broker did not confirm", extra={"job_id": job.id})
            break  # the broker is down: the rest waits for the next run
        d.jobs.mark_published(job.id)
        result.published.append(job.id)
        d.logger.info("re-drive: conversion message published", extra={"job_id": job.id,
                                                                        "correlation_id": job.correlation_id})
    for job in d.jobs.claim_unpublished_events(older_than_s, limit):
        try:
            for queue, event in finished_messages(job, d.finished_queues):
                d.publisher.publish(queue, event, correlation_id=job.correlation_id)
        except DependencyUnavailable:
            result.unconfirmed.append(job.id)
            d.logger.warning("re-drive: broker did not confirm", extra={"job_id": job.id})
            break
        d.jobs.mark_event_published(job.id)
        result.events.append(job.id)
        d.logger.info("re-drive: finished-job event published", extra={"job_id": job.id, "queue": queue})
    for job in d.jobs.deleting(tombstone_ttl_s, limit):
        if not _remove_objects(d, job, budget_s=PURGE_BUDGET_S):
            break  # a very large video: the next run goes on with it
        d.jobs.delete(job.id, job.owner_id)
        result.purged.append(job.id)
    return result


# --- retention (scheduled) ------------------------------------------------------------------------

EXPIRY_BATCH = 100
EXPIRY_BUDGET_S = 20.0  # of the scheduled function's 60 s; the rest waits for the next run


def expire_jobs(d: JobsDeps, *, batch: int = EXPIRY_BATCH, budget_s: float = EXPIRY_BUDGET_S,
                monotonic: Callable[[], float] = time.monotonic) -> list[str]:
    """Remove jobs whose `expires_at` has come (files, export copy, row), `batch` at a time, for at most
    `budget_s`. Each batch is first marked deleted (hidden, no transition possible), so a run that dies
    halfway leaves tombstones that the re-drive purges. Returns the ids removed."""
    removed: list[str] = []
    deadline = monotonic() + budget_s
    while monotonic() < deadline:
        jobs = d.jobs.expire(d.clock(), batch)
        for job in jobs:
            _remove_objects(d, job)
            d.jobs.delete(job.id, job.owner_id)
            removed.append(job.id)
        if jobs:
            d.logger.info("expired jobs removed", extra={"count": len(jobs)})
        if len(jobs) < batch:
            break
    return removed


def remove_jobs(d: JobsDeps, jobs: list[Job], *, budget_s: float = EXPIRY_BUDGET_S,
                monotonic: Callable[[], float] = time.monotonic) -> int:
    """Remove the files and rows of jobs already marked deleted (an account that goes), for at most
    `budget_s`; the re-drive purges whatever is left then like any tombstone. Returns how many went now."""
    deadline = monotonic() + budget_s
    done = 0
    for job in jobs:
        if monotonic() > deadline:
            break
        _remove_objects(d, job)
        d.jobs.delete(job.id, job.owner_id)
        done += 1
    return done
