"""`Content-Disposition: attachment` for the MP3 download (RFC 6266, RFC 8187).

The MP3 is named after the original upload with its extension replaced by ``.mp3``. The header
carries an ASCII-only ``filename`` (for old clients) and the exact name as ``filename*`` in UTF-8
percent-encoding (RFC 8187), which every current browser and curl (``-J``) prefer:

    attachment; filename="Cafe del Mar.mp3"; filename*=UTF-8''Caf%C3%A9%20del%20Mar.mp3

Control characters, quotes, backslashes, path separators and characters that Windows refuses in
file names are removed from both, so the name can neither break out of the header nor name a
directory on the client.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = ["content_disposition", "mp3_filename"]

DEFAULT_STEM = "audio"
MAX_STEM_CHARS = 150
# RFC 8187 attr-char, minus ALPHA / DIGIT (which quote() never escapes).
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"
_UNSAFE = re.compile(r'["\'\\/:*?<>|;%`]')  # quotes, separators, Windows-reserved, and '%' (see below)
_SPACES = re.compile(r"\s+")
# An extension worth replacing: a short alphanumeric suffix ("clip.final.mp4" -> "clip.final").
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def mp3_filename(original: str) -> str:
    """The download's name: `original` cleaned, extension replaced by .mp3 (never empty)."""
    name = unicodedata.normalize("NFC", original or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in name)  # controls, odd spaces
    name = _UNSAFE.sub("", name)
    name = _SPACES.sub(" ", name).strip()
    stem = _EXTENSION.sub("", name).strip().strip(".").strip()
    stem = stem[:MAX_STEM_CHARS].rstrip(" .") or DEFAULT_STEM
    return stem + ".mp3"


def _ascii_fallback(name: str) -> str:
    # Letters lose their accents (é -> e); whatever has no ASCII form becomes "_". A '%' is never
    # kept (removed earlier): some clients percent-decode the plain filename parameter.
    decomposed = unicodedata.normalize("NFKD", name)
    out = []
    for c in decomposed:
        if unicodedata.combining(c):
            continue
        out.append(c if 0x20 <= ord(c) < 0x7F else "_")
    fallback = _UNSAFE.sub("", "".join(out))
    fallback = re.sub(r"_+", "_", fallback).strip(" ._")
    if fallback.lower() in ("", "mp3"):
        return DEFAULT_STEM + ".mp3"
    return fallback if fallback.lower().endswith(".mp3") else fallback + ".mp3"


def content_disposition(original: str) -> str:
    """The header value for downloading the MP3 of an upload named `original`."""
    name = mp3_filename(original)
    fallback = _ascii_fallback(name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe=_ATTR_CHAR_SAFE)}"
