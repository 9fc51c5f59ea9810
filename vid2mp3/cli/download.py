"""Downloading a job's MP3, whatever its size: GET /videos/{id}/mp3 answers a small MP3 itself and a larger
one with a redirect to a short-lived storage link, which is followed without the login token (the link
carries its own signature, and the token is for the API alone). The file is written beside its final
name and renamed when whole, so an interrupted download never leaves a short MP3 behind.
"""

from __future__ import annotations

import email.message
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote

import httpx

from vid2mp3.cli.api import Api, error_from, unreachable
from vid2mp3.cli.errors import CliError

REDIRECTS = (301, 302, 303, 307, 308)
BLOCK = 256 * 1024
_EXTENDED = re.compile(r"filename\*\s*=\s*([A-Za-z0-9!#$%&+^_`{}~-]+)'[A-Za-z0-9-]*'([^;\s]+)", re.IGNORECASE)


class Progress:
    """What a download tells whoever shows it."""

    def download_started(self, filename: str, total: int | None) -> None: ...

    def downloaded(self, received: int) -> None: ...


@dataclass(frozen=True)
class Saved:
    path: Path
    size: int


def download_mp3(api: Api, job_id: str, destination: Callable[[str], Path], progress: Progress) -> Saved:
    """The job's MP3 written where `destination(filename the server names)` says."""
    try:
        with api.http.stream("GET", api.url(f"/videos/{job_id}/mp3"),
                             headers=api.headers({"Accept": "audio/mpeg"})) as response:
            if response.status_code in REDIRECTS and "Location" in response.headers:
                link = response.url.join(response.headers["Location"])
                with api.http.stream("GET", link, headers={"Accept": "audio/mpeg"}) as stored:  # no token
                    return _save(stored, job_id, destination, progress, from_storage=True)
            return _save(response, job_id, destination, progress, from_storage=False)
    except httpx.TransportError as exc:
        raise unreachable(api.base_url, exc) from None


def _save(response: httpx.Response, job_id: str, destination: Callable[[str], Path], progress: Progress, *,
          from_storage: bool) -> Saved:
    if response.status_code != 200:
        response.read()
        if from_storage:
            raise CliError(f"The MP3's download link failed ({response.status_code}); try again.",
                           code="storage_failed")
        raise error_from(response, authed=True)
    filename = filename_from(response.headers.get("Content-Disposition"), fallback=f"{job_id}.mp3")
    target = destination(filename)
    expected = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
    progress.download_started(target.name, expected)
    partial = target.with_name(f".{target.name}.part")
    received = 0
    try:
        with partial.open("wb") as out:
            for block in response.iter_bytes(BLOCK):
                out.write(block)
                received += len(block)
                progress.downloaded(received)
        if expected is not None and received != expected:
            raise CliError(f"The download ended after {received} of {expected} bytes; try again.",
                           code="download_short")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return Saved(target, received)


def filename_from(disposition: str | None, *, fallback: str) -> str:
    """The file name a Content-Disposition names (RFC 6266, `filename*` included), reduced to a bare name:
    whatever the server says, the file lands where the user asked, never in another directory."""
    name = ""
    extended = _EXTENDED.search(disposition or "")
    if extended:  # RFC 6266: filename* (RFC 8187) wins over filename
        try:
            name = unquote(extended.group(2), encoding=extended.group(1), errors="replace")
        except LookupError:  # a charset Python does not know
            name = ""
    if not name and disposition:
        message = email.message.Message()
        message["Content-Disposition"] = disposition
        name = message.get_filename() or ""
    name = PureWindowsPath(PurePosixPath(name).name).name.strip().lstrip(".")
    return name or fallback


def free_path(directory: Path, filename: str) -> Path:
    """`directory/filename`, or `name (2).mp3`, `name (3).mp3`... when taken: never overwrite a file."""
    candidate = directory / filename
    stem, suffix = candidate.stem, candidate.suffix
    n = 2
    while candidate.exists():
        candidate = directory / f"{stem} ({n}){suffix}"
        n += 1
    return candidate
