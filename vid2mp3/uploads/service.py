"""Resumable uploads (tus 1.0.0): create, append, status, terminate, finish into a job, and the sweep.

Every dependency comes in as a parameter (:class:`UploadsDeps`). The wire format (headers) is in
vid2mp3.uploads.tus; here are the rules:

- A PATCH appends at most MAX_BODY_BYTES at exactly the upload's offset. It takes the upload's write
  lease with a conditional update on that offset (two racing PATCHes: one wins, the other gets 423 or
  409), writes the whole GridFS chunks the bytes complete straight into the store, and moves offset
  and carry (the bytes of the chunk not yet full) together when it lets the lease go. Nothing is
  copied at the end: the last PATCH writes the last chunk and the files document, and that is all.
- The first part of an upload is checked for what the first bytes are enough to refuse (a playlist,
  an image, a document): 415 at once, before a gigabyte is sent.
- The last PATCH probes the stored video from its head, its tail and its index (vid2mp3.media.stored)
  and makes the job exactly as POST /videos does, with the same id as the upload: queued and
  published, or, when the probe refuses the file, failed with the probe's error (the failure email
  goes out). When only the whole file can tell, the job is queued without a probe summary and the
  convert function probes it whole, failing the job with the probe's error if it refuses it.
- Unfinished uploads expire (Upload-Expires); the scheduled function removes them with every chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from vid2mp3.auth.identity import Identity
from vid2mp3.bodies import clean_content_type, clean_filename
from vid2mp3.errors import (
    ChecksumMismatch,
    Conflict,
    Gone,
    InvalidInput,
    Locked,
    NotFound,
    PayloadTooLarge,
)
from vid2mp3.jobs import Job, service
from vid2mp3.limits import DELETE_BUDGET_S, MAX_BODY_BYTES
from vid2mp3.media.stored import Verdict, early_refusal, probe_stored
from vid2mp3.media.tracks import parse_track_choice
from vid2mp3.objectstore import CHUNK_SIZE, VIDEOS_BUCKET
from vid2mp3.uploads import Upload, UploadRepository, tus

__all__ = [
    "LEASE_S",
    "Appended",
    "SweepResult",
    "UploadsDeps",
    "append",
    "create",
    "discovery_headers",
    "status",
    "sweep",
    "terminate",
    "upload_location",
]

# A PATCH's write lease lasts longer than the upload function may run (29 s, API Gateway's limit), so a
# live writer never loses it; a killed writer's lease lapses after this.
LEASE_S = 40.0
SWEEP_BATCH = 100
SWEEP_BUDGET_S = 20.0  # of the scheduled function's 60 s
# How much of an upload's first part the early check probes (enough for every container's header).
EARLY_CHECK_BYTES = 1024 * 1024


def _new_token() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class UploadsDeps:
    jobs: service.JobsDeps  # settings, jobs, store, publisher, probe, logger, clock, new_id
    uploads: UploadRepository
    work_root: Path | None = None  # where the probe's sparse copies go (the system's temp dir)
    new_token: Callable[[], str] = field(default=_new_token)
    lease_s: float = LEASE_S


@dataclass(frozen=True)
class Appended:
    upload: Upload  # as it is after the request
    job: Job | None = None  # the job the upload became, once finished


def upload_location(d: UploadsDeps, upload_id: str) -> str:
    return f"{d.jobs.settings.public_base_url}/uploads/{upload_id}"


def discovery_headers(d: UploadsDeps) -> dict[str, str]:
    """What OPTIONS tells a client about this server."""
    return {
        "Tus-Version": tus.TUS_VERSION,
        "Tus-Extension": ",".join(tus.EXTENSIONS),
        "Tus-Max-Size": str(d.jobs.settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
    }


# --- POST /uploads --------------------------------------------------------------------------------


def create(d: UploadsDeps, caller: Identity, headers: Mapping[str, str], *, correlation_id: str,
           body: bytes | None = None) -> Appended:
    """A new upload (201); with a body (creation-with-upload), its first part too."""
    settings = d.jobs.settings
    length = tus.parse_length(headers.get("upload-length"))
    if length == 0:
        raise InvalidInput("The file is empty.", code="empty_file")
    if length > settings.max_upload_bytes:
        raise PayloadTooLarge(f"The file is larger than the limit of {settings.max_upload_bytes} bytes "
                              "(Tus-Max-Size).", code="upload_too_large")
    raw_metadata = headers.get("upload-metadata") or ""
    metadata = tus.parse_metadata(raw_metadata)
    bitrate = service.parse_bitrate(metadata.get("bitrate"))
    track = (metadata.get("audio_track") or "").strip()
    parse_track_choice(track)  # a malformed choice is refused now, not after the upload
    callback_url = service.parse_callback(d.jobs, metadata.get("callback_url"))
    filename = clean_filename(metadata.get("filename") or metadata.get("name") or "") or "video"
    content_type = clean_content_type(metadata.get("filetype") or metadata.get("type") or "")
    checksum = None
    if body:
        tus.check_content_type(headers)
        checksum = tus.parse_checksum(headers.get("upload-checksum"))
        _check_part(body, checksum, 0, length)
    service.admit_upload(d.jobs, caller, length)  # the whole Upload-Length counts from now on
    now = d.jobs.clock()
    upload = Upload(
        id=d.jobs.new_id(), owner_id=caller.user_id, owner_email=caller.email, length=length,
        filename=filename, content_type=content_type, bitrate=bitrate, correlation_id=correlation_id,
        created_at=now, expires_at=now + timedelta(seconds=settings.upload_expiry_seconds),
        metadata=raw_metadata,
        options={k: v for k, v in (("audio_track", track), ("callback_url", callback_url)) if v},
    )
    d.uploads.create(upload)
    d.jobs.logger.info("upload created", extra={"upload_id": upload.id, "length": length})
    if not body:
        return Appended(upload)
    return append(d, caller, upload.id, 0, body, checksum=None)


# --- HEAD /uploads/{id} ---------------------------------------------------------------------------


def status(d: UploadsDeps, caller: Identity, upload_id: str) -> Upload:
    """The caller's upload; NotFound for another's or an unknown one, Gone once it expired unfinished."""
    upload = d.uploads.get(upload_id, caller.user_id)
    if upload is None:
        raise NotFound("No such upload.", code="upload_not_found")
    if not upload.finished and upload.expires_at <= d.jobs.clock():
        raise Gone("This upload expired before it was finished; start it again.", code="upload_expired")
    return upload


# --- PATCH /uploads/{id} --------------------------------------------------------------------------


def append(d: UploadsDeps, caller: Identity, upload_id: str, offset: int, body: bytes, *,
           checksum: tuple[str, bytes] | None) -> Appended:
    """Store `body` at `offset`; on the last byte, the upload becomes a job."""
    _check_size(body)
    token = d.new_token()
    upload = d.uploads.claim(upload_id, caller.user_id, offset, token, d.lease_s)
    if upload is None:
        return _refused_claim(d, caller, upload_id, offset, body)
    try:
        _check_part(body, checksum, offset, upload.length)
        if offset == 0 and body:
            _refuse_early(d, upload, body)
        end = offset + len(body)
        if end == upload.length:
            return _finish(d, upload, token, body)
        data = upload.carry + body
        whole = len(data) // CHUNK_SIZE * CHUNK_SIZE
        if whole:
            d.jobs.store.write_chunks(VIDEOS_BUCKET, upload.video_id, (offset - len(upload.carry)) // CHUNK_SIZE,
                                      data[:whole])
        if not d.uploads.advance(upload.id, token, offset, end, data[whole:]):
            raise Conflict("The upload changed while this part was stored; ask for its offset (HEAD).",
                           code="upload_changed")
        return Appended(replace(upload, offset=end, carry=data[whole:]))
    except BaseException:
        d.uploads.release(upload_id, token)
        raise


def _refuse_early(d: UploadsDeps, upload: Upload, first: bytes) -> None:
    """A first part whose bytes already say the file is of a kind we refuse ends the upload (415)."""
    refusal = early_refusal(first[:EARLY_CHECK_BYTES], probe=d.jobs.probe, work_root=d.work_root)
    if refusal is not None:
        d.uploads.remove(upload.id)
        d.jobs.logger.info("upload refused at its first part", extra={"upload_id": upload.id,
                                                                      "code": refusal.code})
        raise refusal


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A part may be at most {MAX_BODY_BYTES} bytes (4 MiB) long; send the file in "
                              "smaller parts.", code="part_too_large")


def _check_part(body: bytes, checksum: tuple[str, bytes] | None, offset: int, length: int) -> None:
    _check_size(body)
    if offset + len(body) > length:
        raise InvalidInput(f"This part would take the upload past its length of {length} bytes.",
                           code="past_upload_length")
    if not tus.checksum_matches(checksum, body):
        raise ChecksumMismatch("The part does not match its Upload-Checksum; nothing was stored. Send it again.")


def _refused_claim(d: UploadsDeps, caller: Identity, upload_id: str, offset: int, body: bytes) -> Appended:
    """Why the lease was not granted, as the client must hear it."""
    upload = status(d, caller, upload_id)
    if upload.finished and offset == upload.length and not body:
        return Appended(upload, d.jobs.jobs.get(upload.job_id, caller.user_id))  # a repeated last PATCH
    if upload.offset != offset:
        raise Conflict(f"The upload is at offset {upload.offset}, not {offset}; continue from there.",
                       code="offset_mismatch")
    raise Locked("Another request is writing to this upload right now; try again in a moment.",
                 code="upload_locked")


def _finish(d: UploadsDeps, upload: Upload, token: str, body: bytes) -> Appended:
    """The last part: store it, seal the video, probe it, make the job, let the upload go."""
    jd = d.jobs
    job = jd.jobs.get(upload.job_id)
    if job is None:  # not made by an earlier attempt at this last part
        data = upload.carry + body
        jd.store.write_chunks(VIDEOS_BUCKET, upload.video_id, (upload.offset - len(upload.carry)) // CHUNK_SIZE,
                              data)
        metadata = {"owner_id": upload.owner_id, "job_id": upload.job_id, "filename": upload.filename,
                    "content_type": upload.content_type, "size": upload.length,
                    "correlation_id": upload.correlation_id, "uploaded_at": jd.clock(), "upload": "tus"}
        jd.store.seal(VIDEOS_BUCKET, upload.video_id, upload.length, filename=upload.filename, metadata=metadata)
        verdict = probe_stored(jd.store, VIDEOS_BUCKET, upload.video_id, upload.length, probe=jd.probe,
                               track=parse_track_choice(upload.options.get("audio_track")), work_root=d.work_root)
        job = _make_job(d, upload, verdict)
    if not d.uploads.finish(upload.id, token):
        raise Conflict("The upload changed while its last part was stored; ask for its state (HEAD).",
                       code="upload_changed")
    return Appended(replace(upload, offset=upload.length, carry=b"", finished_at=jd.clock()), job)


def _make_job(d: UploadsDeps, upload: Upload, verdict: Verdict) -> Job:
    jd = d.jobs
    now = jd.clock()
    media = verdict.media
    job = Job(
        id=upload.job_id, owner_id=upload.owner_id, owner_email=upload.owner_email, filename=upload.filename,
        content_type=service.content_type_for(upload.content_type, media), size=upload.length, sha256=None,
        video_id=upload.video_id, bitrate=upload.bitrate, correlation_id=upload.correlation_id, created_at=now,
        updated_at=now, duration_s=media.audio_duration_s if media is not None else None,
        # Undecided: the converter probes the whole file, with the user's choice of track.
        extra={"media": media.summary()} if media is not None else
        {k: v for k, v in upload.options.items() if k == "audio_track"},
        callback_url=upload.options.get("callback_url") or None,
    )
    jd.logger.info("upload finished", extra={"upload_id": upload.id, "size": upload.length,
                                             "probe": "accepted" if media else
                                             ("refused" if verdict.refusal else "left to the converter")})
    if verdict.refusal is not None:
        return service.refuse_job(jd, job, verdict.refusal)
    return service.register_job(jd, job, keep_video_on_error=True)


# --- DELETE /uploads/{id} -------------------------------------------------------------------------


def terminate(d: UploadsDeps, caller: Identity, upload_id: str) -> None:
    """Remove an unfinished upload and every byte of it (tus termination). The upload is gone for the
    client at once (410, then 404); bytes a request has no time to remove go with the next sweep."""
    upload = d.uploads.get(upload_id, caller.user_id)
    if upload is None:
        raise NotFound("No such upload.", code="upload_not_found")
    if upload.finished:
        where = service.video_location(d.jobs.settings, upload.job_id)
        raise Conflict(f"This upload is finished: it is the video {where}; delete that instead.",
                       code="upload_finished")
    if d.uploads.end(upload_id, caller.user_id) is None:
        raise Locked("A part is being written to this upload right now; try again in a moment.",
                     code="upload_locked")
    if d.jobs.store.delete(VIDEOS_BUCKET, upload.video_id, budget_s=DELETE_BUDGET_S):
        d.uploads.remove(upload_id)
    d.jobs.logger.info("upload terminated", extra={"upload_id": upload.id, "offset": upload.offset})


# --- the sweep (scheduled) ------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    removed: list[str] = field(default_factory=list)  # unfinished: the row and every chunk
    forgotten: list[str] = field(default_factory=list)  # finished: the row only (the job lives on)


def purge_owner(d: UploadsDeps, owner_id: str) -> int:
    """Every upload of an account that goes: they expire at once, and each unfinished one's chunks go
    within the request's budget (a finished one's video is its job's, removed with it); whatever is
    left the next sweep removes. Returns how many uploads the account had."""
    ended = d.uploads.expire_owner(owner_id)
    deadline = time.monotonic() + DELETE_BUDGET_S
    for upload in ended:
        if upload.finished:
            d.uploads.remove(upload.id)
            continue
        left = deadline - time.monotonic()
        if left > 0 and d.jobs.store.delete(VIDEOS_BUCKET, upload.video_id, budget_s=left):
            d.uploads.remove(upload.id)
    return len(ended)


def sweep(d: UploadsDeps, *, limit: int = SWEEP_BATCH, budget_s: float = SWEEP_BUDGET_S) -> SweepResult:
    """Remove expired uploads: an unfinished one with every chunk it stored; a finished one's row. Stops
    after about `budget_s` (a huge upload on a slow store is finished by the next run)."""
    result = SweepResult()
    deadline = time.monotonic() + budget_s
    for upload in d.uploads.expired(limit):
        if upload.finished:
            d.uploads.remove(upload.id)
            result.forgotten.append(upload.id)
            continue
        left = deadline - time.monotonic()
        if left <= 0 or not d.jobs.store.delete(VIDEOS_BUCKET, upload.video_id, budget_s=left):
            break
        d.uploads.remove(upload.id)
        result.removed.append(upload.id)
        d.jobs.logger.info("expired upload removed", extra={"upload_id": upload.id, "offset": upload.offset})
    return result


def expires_header(upload: Upload) -> dict[str, str]:
    return {} if upload.finished else {"Upload-Expires": tus.http_date(upload.expires_at)}
