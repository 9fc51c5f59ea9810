"""The one place that maps errors to HTTP statuses and shapes error bodies."""

from __future__ import annotations

import json
from typing import Any

from vid2mp3 import errors

STATUS_BY_ERROR: dict[type[errors.AppError], int] = {
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.RangeNotSatisfiable: 416,
    errors.Unprocessable: 422,
    errors.Locked: 423,
    errors.ChecksumMismatch: 460,  # tus 1.0.0, checksum extension
    errors.TooManyRequests: 429,
    errors.DependencyUnavailable: 503,
}

JSON_HEADERS = {"Content-Type": "application/json"}
# On every response of every function (vid2mp3.api.lambda_handler adds what a route did not set): no
# content sniffing, and no caching unless a route says otherwise (the MP3's own revalidation rule).
STANDARD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def with_standard_headers(response: Any) -> Any:
    """An API Gateway proxy response with STANDARD_HEADERS where it had no such header of its own."""
    if not isinstance(response, dict):
        return response
    headers = dict(response.get("headers") or {})
    present = {k.lower() for k in headers} | {k.lower() for k in (response.get("multiValueHeaders") or {})}
    for name, value in STANDARD_HEADERS.items():
        if name.lower() not in present:
            headers[name] = value
    return {**response, "headers": headers}


def status_for(exc: errors.AppError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_parts(exc: Exception) -> tuple[int, dict[str, str], str]:
    """(status, headers, JSON body) for any exception; unknown ones become an opaque 500."""
    if not isinstance(exc, errors.AppError):
        exc = errors.AppError()
    headers = dict(JSON_HEADERS)
    if isinstance(exc, errors.TooManyRequests | errors.Locked):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    return status_for(exc), headers, json.dumps(error_body(exc.code, exc.message))
