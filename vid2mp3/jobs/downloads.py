"""GET /videos/{id}/mp3: the MP3 of a done job, of any size, within AWS's payload limits.

API Gateway and Lambda buffer a whole response, at most 6 MB once base64-encoded, so no response
carries more than MAX_BODY_BYTES (4 MiB) of MP3:

- a Range request is answered with at most that much (206, with the Content-Range actually sent,
  as RFC 9110 allows a server to);
- a plain GET of an MP3 that fits is answered inline (200);
- a plain GET of a larger one is redirected (302) to a short-lived presigned URL of an export copy in
  object storage (vid2mp3.exports), made on the first such download, carrying the same file name
  (Content-Disposition) and type. `curl -L -OJ`, browsers and `<audio src>` follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vid2mp3.auth.identity import Identity
from vid2mp3.errors import Conflict, DependencyUnavailable, NotFound, PayloadTooLarge
from vid2mp3.exports import export_key
from vid2mp3.jobs import Job
from vid2mp3.jobs.disposition import content_disposition, mp3_filename
from vid2mp3.jobs.ranges import parse_range
from vid2mp3.jobs.service import JobsDeps, get_video
from vid2mp3.limits import MAX_BODY_BYTES
from vid2mp3.objectstore import MP3S_BUCKET

__all__ = ["Download", "download_mp3", "mp3_link"]

MP3_TYPE = "audio/mpeg"


@dataclass(frozen=True)
class Download:
    status: int  # 200, 206, 302 or 304
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
    """The MP3, one range of it, or where to fetch it (see the module's description)."""
    job = _done_job(d, caller, job_id)
    assert job.mp3 is not None
    size = job.mp3.size
    etag = f'"{job.id}.{size}"'  # the MP3 of a job never changes once written
    disposition = content_disposition(job.filename)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "Content-Disposition": disposition,
    }
    if if_none_match and _etag_matches(if_none_match, etag):
        return Download(304, headers, job=job)
    wanted = None if (if_range and if_range.strip() != etag) else parse_range(range_header, size)
    if wanted is None and size > MAX_BODY_BYTES:
        return _redirect(d, job, disposition)
    first, last = wanted if wanted is not None else (0, size - 1)
    last = min(last, first + MAX_BODY_BYTES - 1)
    body = _read(d, job, first, last + 1)
    # No Content-Length of ours: API Gateway sets it from the body it really sends (which is the
    # base64 text, not these bytes, when the client's Accept does not select a binary media type).
    headers["Content-Type"] = MP3_TYPE
    if wanted is None:
        return Download(200, headers, body, job=job)
    headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{size}"
    return Download(206, headers, body, job=job)


def mp3_link(d: JobsDeps, caller: Identity, job_id: str) -> dict[str, Any]:
    """Where to fetch the MP3 directly, whatever its size: a short-lived link to the export copy (made on
    first need), for clients that cannot send a token with the download itself (a page's download link,
    `<audio src>`)."""
    job = _done_job(d, caller, job_id)
    assert job.mp3 is not None
    link = _export_link(d, job, content_disposition(job.filename))
    assert d.exporter is not None  # _export_link made sure
    return {"url": link, "expires_in": d.exporter.url_ttl_s, "size": job.mp3.size,
            "filename": mp3_filename(job.filename)}


def _done_job(d: JobsDeps, caller: Identity, job_id: str) -> Job:
    job = get_video(d, caller, job_id)
    if job.status == "failed":
        raise Conflict("The conversion failed; there is no MP3.", code="conversion_failed")
    if job.status != "done" or job.mp3 is None:
        raise Conflict(f"The MP3 is not ready yet (the job is {job.status}).", code="not_ready")
    return job


def _read(d: JobsDeps, job: Job, start: int, end: int) -> bytes:
    assert job.mp3 is not None
    try:
        return b"".join(d.store.read(MP3S_BUCKET, job.mp3.object_id, start, end))
    except KeyError:
        d.logger.error("a done job's MP3 is missing", extra={"job_id": job.id, "mp3_id": job.mp3.object_id})
        raise NotFound("The MP3 is no longer available.", code="mp3_missing") from None


def _redirect(d: JobsDeps, job: Job, disposition: str) -> Download:
    if d.exporter is None:
        raise PayloadTooLarge(
            f"The MP3 is larger than {MAX_BODY_BYTES} bytes, more than one response can carry; download it "
            "in parts with Range requests (bytes=0-4194303, ...).", code="use_range_requests")
    # The link is short-lived: neither the redirect nor its target may be cached.
    return Download(302, {"Location": _export_link(d, job, disposition), "Cache-Control": "no-store"}, job=job)


def _export_link(d: JobsDeps, job: Job, disposition: str) -> str:
    """A presigned link to the job's export copy, made first when there is none."""
    assert job.mp3 is not None
    if d.exporter is None:
        raise DependencyUnavailable("Links to MP3s are not available here (no export storage is configured).")
    key, size = export_key(job.id), job.mp3.size
    link = d.exporter.link(key, size=size, content_disposition=disposition, content_type=MP3_TYPE)
    if link is None:
        try:
            chunks = d.store.read(MP3S_BUCKET, job.mp3.object_id)
        except KeyError:
            raise NotFound("The MP3 is no longer available.", code="mp3_missing") from None
        d.exporter.export(key, chunks, size=size)
        d.logger.info("MP3 exported for download", extra={"job_id": job.id, "size": size})
        link = d.exporter.link(key, size=size, content_disposition=disposition, content_type=MP3_TYPE)
        if link is None:
            raise DependencyUnavailable("The MP3 could not be prepared for download; try again shortly.")
    return link


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags
