"""Single byte ranges (RFC 9110, section 14): what part of an object a GET serves."""

from __future__ import annotations

import re

from vid2mp3.errors import RangeNotSatisfiable

__all__ = ["parse_range"]

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte to serve for `header`, or None to serve the whole object.

    A missing or malformed header, another unit or several ranges are ignored (a 200 with everything,
    as RFC 9110 allows); a well-formed single range that starts past the end, or a zero-length suffix,
    raises RangeNotSatisfiable (416).
    """
    if not header:
        return None
    m = _SPEC.match(header)
    if m is None:
        return None  # not bytes, several ranges, or nonsense: ignore it
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last N bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # an invalid range-spec is ignored
    if first >= size:
        raise RangeNotSatisfiable(size)
    last = int(last_s) if last_s else size - 1
    return first, min(last, size - 1)
