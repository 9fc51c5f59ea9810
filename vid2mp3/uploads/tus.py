"""The tus 1.0.0 wire format (https://tus.io/protocols/resumable-upload): headers in, headers out.

Pure functions over header values; the use cases are in vid2mp3.uploads.service and the routes in
functions/upload/app.py. Extensions offered: creation, creation-with-upload, termination,
expiration and checksum.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

from vid2mp3.errors import InvalidInput, PreconditionFailed, UnsupportedMedia

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "EXTENSIONS",
    "OFFSET_CONTENT_TYPE",
    "TUS_VERSION",
    "checksum_matches",
    "cors_headers",
    "http_date",
    "parse_checksum",
    "parse_length",
    "parse_metadata",
    "parse_offset",
]

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration", "checksum")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS: dict[str, str] = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512", "md5": "md5"}
MAX_METADATA_CHARS = 4096

# What a browser may send to, and read from, a tus endpoint of another origin.
ALLOW_HEADERS = ("Authorization, Content-Type, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, "
                 "Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, Upload-Checksum, "
                 "Upload-Defer-Length, Upload-Concat, X-Correlation-Id")
EXPOSE_HEADERS = ("Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, "
                  "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Upload-Checksum, "
                  "Vid2mp3-Job, Retry-After")
ALLOW_METHODS = "OPTIONS, POST, HEAD, PATCH, DELETE"


def _number(value: str | None, header: str, code: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidInput(f"`{header}` must be a non-negative whole number of bytes.", code=code)
    return int(text)


def parse_length(value: str | None) -> int:
    """Upload-Length (required: this server does not offer creation-defer-length)."""
    length = _number(value, "Upload-Length", "invalid_upload_length")
    if length is None:
        raise InvalidInput("Send the file's size in `Upload-Length` (deferred lengths are not supported).",
                           code="upload_length_missing")
    return length


def parse_offset(value: str | None) -> int:
    offset = _number(value, "Upload-Offset", "invalid_upload_offset")
    if offset is None:
        raise InvalidInput("Send `Upload-Offset` with every PATCH.", code="upload_offset_missing")
    return offset


def parse_metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64value` pairs (a key alone has an empty value)."""
    if not value or not value.strip():
        return {}
    if len(value) > MAX_METADATA_CHARS:
        raise InvalidInput(f"`Upload-Metadata` is longer than {MAX_METADATA_CHARS} characters.",
                           code="invalid_metadata")
    found: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in found or not key.isascii():
            raise InvalidInput("`Upload-Metadata` must be comma-separated `key base64-value` pairs with "
                               "distinct keys.", code="invalid_metadata")
        raw = parts[1] if len(parts) == 2 else ""
        try:
            found[key] = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidInput(f"The value of `{key}` in `Upload-Metadata` is not base64-encoded UTF-8.",
                               code="invalid_metadata") from None
    return found


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`, or None when absent."""
    if value is None or not value.strip():
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise InvalidInput("`Upload-Checksum` must be `<algorithm> <base64 digest>`.", code="invalid_checksum")
    algorithm = parts[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(f"Checksum algorithm `{parts[0]}` is not supported; use one of "
                           f"{', '.join(CHECKSUM_ALGORITHMS)}.", code="checksum_algorithm_unsupported")
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("The digest in `Upload-Checksum` is not base64.", code="invalid_checksum") from None
    return algorithm, digest


def checksum_matches(checksum: tuple[str, bytes] | None, data: bytes) -> bool:
    if checksum is None:
        return True
    algorithm, digest = checksum
    return hashlib.new(CHECKSUM_ALGORITHMS[algorithm], data).digest() == digest


def check_version(headers: Mapping[str, str]) -> None:
    """Every request but OPTIONS must say `Tus-Resumable: 1.0.0` (412 otherwise)."""
    if (headers.get("tus-resumable") or "").strip() != TUS_VERSION:
        raise PreconditionFailed(f"This server speaks tus {TUS_VERSION}; send `Tus-Resumable: {TUS_VERSION}`.",
                                 code="tus_version_unsupported")


def check_content_type(headers: Mapping[str, str]) -> None:
    given = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if given != OFFSET_CONTENT_TYPE:
        raise UnsupportedMedia(f"Send the bytes of a PATCH as `Content-Type: {OFFSET_CONTENT_TYPE}`.",
                               code="wrong_content_type")


def http_date(moment: datetime) -> str:
    """RFC 9110 HTTP-date (Upload-Expires)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def cors_headers(origin: str | None, allowed: tuple[str, ...], *, preflight: bool = False) -> dict[str, str]:
    """CORS headers for a request from `origin`: none when the origin is not allowed (or absent)."""
    if not origin or not ("*" in allowed or origin in allowed):
        return {}
    headers = {"Access-Control-Allow-Origin": "*" if "*" in allowed else origin,
               "Access-Control-Expose-Headers": EXPOSE_HEADERS}
    if "*" not in allowed:
        headers["Vary"] = "Origin"
    if preflight:
        headers.update({"Access-Control-Allow-Methods": ALLOW_METHODS,
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": "86400"})
    return headers
