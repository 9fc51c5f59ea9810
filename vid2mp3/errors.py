"""Every error the service knows, by meaning; statuses are assigned in one place (vid2mp3.http)."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is missing or malformed: reported as one line naming the variable."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


class AppError(Exception):
    """An error a client may see: a stable code and a human message, never internals."""

    code = "internal_error"
    message = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        if code is not None:
            self.code = code


class InvalidInput(AppError):
    code = "invalid_input"
    message = "The request is not valid."


class Unauthorized(AppError):
    code = "unauthorized"
    message = "Authentication is required."


class NotFound(AppError):
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    message = "The upload is too large."


class Gone(AppError):
    code = "gone"
    message = "This resource existed but is no longer available."


class PreconditionFailed(AppError):
    code = "precondition_failed"
    message = "A precondition of the request does not hold."


class Locked(AppError):
    """Another request is changing the resource right now; retry after `retry_after` seconds."""

    code = "locked"
    message = "Another request is changing this right now; try again in a moment."

    def __init__(self, message: str | None = None, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ChecksumMismatch(AppError):
    """The bytes received are not what their checksum says (tus checksum extension: status 460)."""

    code = "checksum_mismatch"
    message = "The data does not match its checksum; nothing was stored."


class UnsupportedMedia(AppError):
    code = "unsupported_media"
    message = "This file is not a supported media file."


class Unprocessable(AppError):
    code = "unprocessable"
    message = "The request could not be processed."


class RangeNotSatisfiable(AppError):
    code = "range_not_satisfiable"
    message = "The requested range cannot be served."

    def __init__(self, size: int, message: str | None = None) -> None:
        super().__init__(message)
        self.size = size


class TooManyRequests(AppError):
    code = "too_many_requests"
    message = "Too many attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class DependencyUnavailable(AppError):
    """A backing service (database, object store, broker, SMTP) cannot be reached right now.

    Queue-triggered functions let it propagate so the event source redelivers the message.
    """

    code = "dependency_unavailable"
    message = "A backing service is unavailable; try again shortly."


class PermanentFailure(Exception):
    """A job cannot succeed however often it is retried (bad input); carries a stable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
