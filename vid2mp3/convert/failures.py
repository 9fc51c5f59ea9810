"""How a conversion can fail, by meaning: permanent (stable code, human message) or transient.

Permanent failures are raised as :class:`vid2mp3.errors.PermanentFailure`; the job is marked failed
with the code and the message, which the user sees (GET /videos/{id}, the email). Anything else that
escapes a conversion is transient: the message is redelivered, and on its last allowed delivery the
job is marked failed with :data:`RETRIES_EXHAUSTED` (see vid2mp3.convert.service).
"""

from __future__ import annotations

from vid2mp3.errors import AppError, PermanentFailure

NO_AUDIO_STREAM = "no_audio_stream"
UNDECODABLE = "undecodable"
TRUNCATED = "truncated"
DURATION_MISMATCH = "duration_mismatch"
TOO_LONG = "too_long"
CONVERSION_TIMEOUT = "conversion_timeout"
SOURCE_MISSING = "source_missing"
INVALID_OPTIONS = "invalid_options"
RETRIES_EXHAUSTED = "retries_exhausted"

MESSAGES: dict[str, str] = {
    NO_AUDIO_STREAM: "The video has no audio track, so there is nothing to convert to MP3.",
    UNDECODABLE: "The file could not be decoded; it may be damaged or in a format we cannot read.",
    TRUNCATED: "The file ends early (it looks cut short); only part of its audio could be read.",
    DURATION_MISMATCH: "The converted audio does not match the length the file declares.",
    TOO_LONG: "The file is longer than the maximum length we convert.",
    CONVERSION_TIMEOUT: "The conversion took too long and was stopped.",
    SOURCE_MISSING: "The uploaded video is no longer available.",
    INVALID_OPTIONS: "The conversion options are not valid.",
    RETRIES_EXHAUSTED: "The conversion could not be completed after several attempts; please try again later.",
}

# The probe's refusals (vid2mp3.media.probe) as conversion failures. A file the upload accepted is
# probed again here; what it refuses now can never convert.
_PROBE_CODES: dict[str, str] = {
    "not_media": UNDECODABLE,
    "no_audio_stream": NO_AUDIO_STREAM,
    "too_long": TOO_LONG,
}


def permanent(code: str, message: str | None = None) -> PermanentFailure:
    return PermanentFailure(code, message or MESSAGES.get(code, MESSAGES[UNDECODABLE]))


def from_probe(error: AppError) -> PermanentFailure:
    """A probe refusal (UnsupportedMedia / Unprocessable) as a permanent failure with a stable code."""
    code = _PROBE_CODES.get(error.code, error.code)
    return PermanentFailure(code, error.message if code == error.code else MESSAGES[code])


class Transient(Exception):
    """The conversion could not finish for a reason that may pass (killed, out of time, disk full):
    the message is redelivered."""


class LockBusy(Transient):
    """Another worker has been converting the job for the whole wait: redeliver, never give up on it
    from here (that worker may still finish it)."""
