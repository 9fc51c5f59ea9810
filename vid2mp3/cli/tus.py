"""Resumable uploads with tus 1.0.0 (the API's `/uploads`), in parts of at most 4 MiB.

The upload's URL is kept in the user's config directory under the file's identity (its resolved path,
size, modification time and inode, with the API and the bitrate), so the same command run again after
Ctrl-C, a lost connection or a reboot asks the server where the upload stands (HEAD) and sends only the
rest. A part that fails in passing (connection reset, 423 another writer, 409 offset moved, 460 checksum,
5xx) is retried after asking the server for its offset again.

Why not tuspy: docs/decisions.md, "CLI (issue 10)".
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vid2mp3.cli.api import Api, error_from
from vid2mp3.cli.config import private_dir, read_json, write_private_json
from vid2mp3.cli.errors import ApiError, CliError, Unreachable

PART_BYTES = 4 * 1024 * 1024  # the most one request may carry through API Gateway and Lambda
TUS = {"Tus-Resumable": "1.0.0"}
RETRY_STATUSES = (409, 423, 460, 500, 502, 503, 504)
RETRIES = 5
FIRST_DELAY_S = 0.5
STORE_MAX_AGE_S = 30 * 24 * 3600  # records of uploads nobody came back for


@dataclass(frozen=True)
class FileIdentity:
    path: Path
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        resolved = path.resolve()
        stat = resolved.stat()
        return cls(resolved, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def key(self, api_url: str, bitrate: str | None) -> str:
        """The same file (unchanged) sent to the same API with the same options has the same key."""
        facts = [api_url, str(self.path), self.size, self.mtime_ns, self.inode, bitrate or ""]
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]


class UploadStore:
    """One small JSON file per unfinished file (`<config>/uploads/<key>.json`): its upload URL, then its job."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        data = read_json(self._path(key))
        return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        write_private_json(self._path(key), record)

    def drop(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def prune(self, now: float | None = None) -> None:
        if not self.directory.is_dir():
            return
        cutoff = (time.time() if now is None else now) - STORE_MAX_AGE_S
        for path in private_dir(self.directory).glob("*.json"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Uploaded:
    job_id: str
    key: str  # the store's record, to drop once the file is finished with
    resumed_from: int | None  # where an earlier run had got to; None when this run started it


class Progress:
    """What an upload tells whoever shows it."""

    def started(self, size: int, offset: int, *, resumed: bool) -> None: ...

    def advanced(self, offset: int) -> None: ...


def job_id_of(job_url: str) -> str:
    """The job's id from its URL (the `Vid2mp3-Job` header: `<API>/videos/<id>`)."""
    return job_url.rstrip("/").rsplit("/", 1)[-1]


def upload(api: Api, store: UploadStore, path: Path, *, bitrate: str | None, progress: Progress,
           sleep: Callable[[float], None] = time.sleep) -> Uploaded:
    """Upload `path` (or the rest of it, or nothing when an earlier run finished it); the job's id."""
    identity = FileIdentity.of(path)
    key = identity.key(api.base_url, bitrate)
    record = store.get(key)
    if record is not None and record.get("job_id"):
        progress.started(identity.size, identity.size, resumed=True)
        return Uploaded(str(record["job_id"]), key, identity.size)
    state = _where(api, record["url"]) if record is not None else None
    if state is None or record is None:
        url = _create(api, identity, path.name, bitrate)
        record = {"url": url, "file": str(identity.path), "size": identity.size, "started_at": time.time()}
        store.put(key, record)
        offset, job_url, resumed_from = 0, None, None
    else:
        offset, job_url = state
        resumed_from = offset
    progress.started(identity.size, offset, resumed=resumed_from is not None)
    with identity.path.open("rb") as source:
        while job_url is None and offset < identity.size:
            offset, job_url = _send_part(api, record["url"], source, offset, sleep)
            progress.advanced(offset)
    if job_url is None:  # finished by an earlier run whose last answer was lost
        state = _where(api, record["url"])
        job_url = state[1] if state else None
    if job_url is None:
        raise CliError(f"{path.name}: the server did not say which job the upload became; try again.",
                       code="no_job")
    record["job_id"] = job_id_of(job_url)
    store.put(key, record)
    return Uploaded(record["job_id"], key, resumed_from)


def _create(api: Api, identity: FileIdentity, name: str, bitrate: str | None) -> str:
    metadata = {"filename": name, "filetype": mimetypes.guess_type(name)[0] or "application/octet-stream"}
    if bitrate:
        metadata["bitrate"] = bitrate
    encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
    response = api.send("POST", "/uploads", headers={**TUS, "Upload-Length": str(identity.size),
                                                     "Upload-Metadata": encoded})
    location = response.headers.get("Location")
    if not location:
        raise CliError("The API did not say where to send the file (no Location).", code="no_location")
    return str(response.url.join(location))  # absolute, or relative to the request


def _where(api: Api, url: str) -> tuple[int, str | None] | None:
    """(offset, job URL once finished) of an upload; None when it is gone (expired, removed)."""
    try:
        response = api.send("HEAD", url, headers=TUS)
    except ApiError as exc:
        if exc.status in (404, 410):
            return None
        raise
    return int(response.headers["Upload-Offset"]), response.headers.get("Vid2mp3-Job")


def _send_part(api: Api, url: str, source: BinaryIO, offset: int,
               sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """Send the part at `offset`; (the server's new offset, the job URL when that was the last part)."""
    delay = FIRST_DELAY_S
    for attempt in range(RETRIES + 1):
        source.seek(offset)
        part = source.read(PART_BYTES)
        checksum = base64.b64encode(hashlib.sha1(part).digest()).decode()  # noqa: S324 - tus checksum, not security
        headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset),
                   "Upload-Checksum": f"sha1 {checksum}"}
        failure: CliError
        try:
            response = api.send("PATCH", url, headers=headers, content=part, ok_statuses=RETRY_STATUSES)
            if response.status_code not in RETRY_STATUSES:
                return int(response.headers["Upload-Offset"]), response.headers.get("Vid2mp3-Job")
            failure = error_from(response, authed=True)
        except Unreachable as exc:
            failure = exc
        if attempt == RETRIES:
            raise failure
        sleep(delay)
        delay *= 2
        try:
            state = _where(api, url)
        except Unreachable:
            continue
        if state is None:
            raise CliError("The upload expired on the server before it was finished; run the command again to "
                           "start it anew.", code="upload_gone")
        offset, job_url = state
        if job_url is not None:
            return offset, job_url
    raise AssertionError("unreachable")  # pragma: no cover

