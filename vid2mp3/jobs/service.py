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
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vid2mp3.auth.identity import Identity
from vid2mp3.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from vid2mp3.jobs import Job, JobRepository, completed_event, conversion_message, failed_event
from vid2mp3.jobs.disposition import content_disposition
from vid2mp3.jobs.ranges import parse_range
from vid2mp3.media.binaries import find_ffprobe
from vid2mp3.media.probe import MediaInfo, probe
from vid2mp3.media.tracks import TrackChoice, parse_track_choice
from vid2mp3.multipart import spooled_upload
from vid2mp3.objectstore import MP3S_BUCKET, VIDEOS_BUCKET, ObjectStore
from vid2mp3.queue import Publisher
from vid2mp3.queue.topology import CONVERSION_COMPLETED_QUEUE, CONVERSION_FAILED_QUEUE, VIDEO_CONVERSION_QUEUE
from vid2mp3.settings import BITRATES, Settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger


__all__ = [
    "DEFAULT_BITRATE",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REDRIVE_AFTER_S",
    "TOMBSTONE_TTL_S",
    "Download",
    "JobsDeps",
    "Page",
    "RedriveResult",
    "decode_cursor",
    "delete_video",
    "download_mp3",
    "encode_cursor",
    "get_video",
    "list_videos",
    "media_prober",
    "parse_bitrate",
    "redrive",
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
    # Probes a spooled upload and checks it (vid2mp3.media.probe.probe with the settings' cap), taking
    # the audio track the user chose (None: the usual rule); raises UnsupportedMedia / Unprocessable.
    # Unit tests hand in a fake.
    probe: Callable[[Path, TrackChoice | None], MediaInfo]
    clock: Callable[[], datetime] = _utcnow
    new_id: Callable[[], str] = _new_id
    queue: str = VIDEO_CONVERSION_QUEUE  # where conversion messages go (tests use a private one)
    completed_queue: str = CONVERSION_COMPLETED_QUEUE  # where the re-drive republishes finished-job events
    failed_queue: str = CONVERSION_FAILED_QUEUE


def media_prober(settings: Settings, ffprobe: str | None = None) -> Callable[[Path, TrackChoice | None], MediaInfo]:
    """The real probe: ffprobe (found on first use: the re-drive never needs it) and the duration cap."""
    find = functools.cache(lambda: ffprobe or find_ffprobe(settings.ffprobe_path))

    def run(path: Path, track: TrackChoice | None = None) -> MediaInfo:
        return probe(path, ffprobe=find(), max_duration_s=settings.max_duration_seconds, track=track)

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
    max_bytes = d.settings.max_upload_bytes
    if body_length is not None and body_length > max_bytes + BODY_OVERHEAD:
        raise PayloadTooLarge(f"The upload is larger than the limit of {max_bytes} bytes.")
    with spooled_upload(body, content_type, max_bytes=max_bytes, fields=("bitrate", "audio_track")) as form:
        upload = form.file
        if upload is None:
            raise InvalidInput("Send the video as a file in the multipart field `file`.", code="file_missing")
        bitrate = parse_bitrate(form.fields.get("bitrate"))
        track = parse_track_choice(form.fields.get("audio_track"))
        if upload.size == 0:
            raise InvalidInput("The file is empty.", code="empty_file")
        media = d.probe(upload.path, track)
        job_id, video_id, now = d.new_id(), d.new_id(), d.clock()
        filename = upload.filename or "video"
        content = _content_type(upload.content_type, media)
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
        extra={"media": media.summary()},
    )
    try:
        d.jobs.create(job)
    except BaseException:
        _forget_video(d, video_id)
        raise
    d.logger.info("video stored", extra={"job_id": job.id, "video_id": video_id, "size": upload.size,
                                          "format": media.format_name})
    return _publish(d, job)


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


def _content_type(declared: str, media: MediaInfo) -> str:
    if declared and declared not in _GENERIC_TYPES:
        return declared
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
    """The caller's job; NotFound for someone else's, an unknown or a malformed id alike."""
    job = d.jobs.get(job_id, caller.user_id)
    if job is None:
        raise NotFound("No such video.")
    return job


# --- GET /videos/{id}/mp3 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    status: int  # 200, 206 or 304
    headers: dict[str, str]
    body: bytes = b""
    job: Job | None = field(default=None, repr=False)


def download_mp3(
    d: JobsDeps,
    caller: Identity,
    job_id: str,
    *,
    range_header: str | None = None,
    if_none_match: str | None = None,
    if_range: str | None = None,
) -> Download:
    """The MP3 (or one range of it), read from the object store into memory.

    API Gateway REST and Lambda buffer the whole response: it must fit the 6 MB invoke payload after
    base64 (about 4.5 MB of MP3) on AWS; larger files are fetched there with Range requests.
    """
    job = get_video(d, caller, job_id)
    if job.status == "failed":
        raise Conflict("The conversion failed; there is no MP3.", code="conversion_failed")
    if job.status != "done" or job.mp3 is None:
        raise Conflict(f"The MP3 is not ready yet (the job is {job.status}).", code="not_ready")
    mp3 = job.mp3
    etag = f'"{job.id}.{mp3.size}"'  # the MP3 of a job never changes once written
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "Content-Disposition": content_disposition(job.filename),
    }
    if if_none_match and _etag_matches(if_none_match, etag):
        return Download(304, headers, job=job)
    wanted = None if (if_range and if_range.strip() != etag) else parse_range(range_header, mp3.size)
    first, last = wanted if wanted is not None else (0, mp3.size - 1)
    try:
        body = b"".join(d.store.read(MP3S_BUCKET, mp3.object_id, first, last + 1))
    except KeyError:
        d.logger.error("a done job's MP3 is missing", extra={"job_id": job.id, "mp3_id": mp3.object_id})
        raise NotFound("The MP3 is no longer available.", code="mp3_missing") from None
    # No Content-Length of ours: API Gateway sets it from the body it really sends (which is the
    # base64 text, not these bytes, when the client's Accept does not select a binary media type).
    headers["Content-Type"] = "audio/mpeg"
    if wanted is None:
        return Download(200, headers, body, job=job)
    headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{mp3.size}"
    return Download(206, headers, body, job=job)


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


# --- DELETE /videos/{id} --------------------------------------------------------------------------


def delete_video(d: JobsDeps, caller: Identity, job_id: str) -> None:
    """Remove the caller's job, its video and its MP3. Repeating it is fine (the row stays a while
    as a tombstone); someone else's or an unknown job is NotFound."""
    job = d.jobs.mark_deleted(job_id, caller.user_id)
    if job is None:
        raise NotFound("No such video.")
    _remove_objects(d.store, job)
    d.logger.info("video deleted", extra={"job_id": job.id})


def _remove_objects(store: ObjectStore, job: Job) -> None:
    store.delete(VIDEOS_BUCKET, job.video_id)
    if job.mp3 is not None:
        store.delete(MP3S_BUCKET, job.mp3.object_id)
    # Also the conventional id of a job's MP3 (its job id), in case a conversion stored it and
    # lost the race with this delete before it could record it.
    store.delete(MP3S_BUCKET, job.id)


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


def _finished_event(d: JobsDeps, job: Job) -> tuple[str, dict[str, Any]]:
    """The completion or failure event of a finished job, as convert publishes it."""
    if job.status == "done" and job.mp3 is not None:
        return d.completed_queue, completed_event(job, job.mp3)
    return d.failed_queue, failed_event(job, job.error_code or "failed", job.error_message or "")


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
        queue, event = _finished_event(d, job)
        try:
            d.publisher.publish(queue, event, correlation_id=job.correlation_id)
        except DependencyUnavailable:
            result.unconfirmed.append(job.id)
            d.logger.warning("re-drive: broker did not confirm", extra={"job_id": job.id})
            break
        d.jobs.mark_event_published(job.id)
        result.events.append(job.id)
        d.logger.info("re-drive: finished-job event published", extra={"job_id": job.id, "queue": queue})
    for job in d.jobs.deleting(tombstone_ttl_s, limit):
        _remove_objects(d.store, job)
        d.jobs.delete(job.id, job.owner_id)
        result.purged.append(job.id)
    return result
