"""Which audio track a conversion takes: the user's choice, else the one a player would play.

A file may carry several audio tracks: another language, a director's commentary, an audio
description for the blind, a track mixed for the hard of hearing. The rule (docs/decisions.md, issue 11):

1. The user chose (`audio_track` on POST /videos or in the tus upload's metadata):
   - a number: the track at that position among the file's audio tracks, counting from 0 (the
     `audio.index` that GET /videos/{id} shows);
   - a language (ISO 639-1 ``en`` or 639-2 ``eng``/``ger``/``deu``, a region suffix ``en-US`` is
     ignored): among the tracks in that language, the usual rule below picks one.
   A choice no track matches is refused (422 ``audio_track_not_found``), not silently replaced.
2. Otherwise: leave out commentary, descriptive (visual-impaired) and hearing-impaired tracks when any
   other track exists; of the rest, the first one flagged default; else the first one.

Pure functions over the probe's AudioStream records; parsing the user's text is here too, so the
multipart form and the tus metadata accept the same values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vid2mp3.errors import InvalidInput, Unprocessable

if TYPE_CHECKING:
    from vid2mp3.media.probe import AudioStream

__all__ = ["MAX_TRACK_INDEX", "TrackChoice", "choose_track", "is_special", "parse_track_choice", "same_language"]

MAX_TRACK_INDEX = 99
_LANGUAGE = re.compile(r"^([a-z]{2,3})(?:[-_][a-z0-9]{2,8})*$")
# Words in a track's title that mark it as not the main programme, when the container has no flag for it.
_SPECIAL_TITLE = re.compile(r"\b(commentary|kommentar|commentaire|audio description|descriptive|described|"
                            r"description audio|audiodeskription|hearing impaired|sdh)\b", re.IGNORECASE)

# ISO 639-2/B (bibliographic) codes differ from 639-2/T for some languages; both appear in files.
_B_TO_T = {"alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "chi": "zho", "cze": "ces", "dut": "nld",
           "fre": "fra", "geo": "kat", "ger": "deu", "gre": "ell", "ice": "isl", "mac": "mkd", "mao": "mri",
           "may": "msa", "per": "fas", "rum": "ron", "slo": "slk", "tib": "bod", "wel": "cym"}
# ISO 639-1 to 639-2/T for the languages most often found in video files.
_ONE_TO_T = {"ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan",
             "de": "deu", "el": "ell", "en": "eng", "es": "spa", "et": "est", "eu": "eus", "fa": "fas",
             "fi": "fin", "fr": "fra", "ga": "gle", "gl": "glg", "he": "heb", "hi": "hin", "hr": "hrv",
             "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn", "ka": "kat",
             "ko": "kor", "lt": "lit", "lv": "lav", "mk": "mkd", "ms": "msa", "mt": "mlt", "nl": "nld",
             "no": "nor", "nb": "nob", "nn": "nno", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus",
             "sk": "slk", "sl": "slv", "sq": "sqi", "sr": "srp", "sv": "swe", "ta": "tam", "th": "tha",
             "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "zho"}
_UNDETERMINED = frozenset({"und", "unk", "mis", "mul", "zxx", ""})


@dataclass(frozen=True)
class TrackChoice:
    """What the user asked for: a position among the audio tracks, or a language (ISO 639-2/T)."""

    index: int | None = None
    language: str | None = None

    def describe(self) -> str:
        return f"audio track {self.index}" if self.index is not None else f"an audio track in {self.language!r}"


def parse_track_choice(value: str | None) -> TrackChoice | None:
    """The user's `audio_track`: None when absent or blank; InvalidInput (400) when it is neither a track
    number (0-99) nor a language code."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text.isdigit():
        index = int(text)
        if index <= MAX_TRACK_INDEX:
            return TrackChoice(index=index)
    else:
        language = normalise_language(text)
        if language is not None:
            return TrackChoice(language=language)
    raise InvalidInput("`audio_track` must be a track number (0 is the first audio track) or a language code "
                       "such as `en` or `eng`.", code="invalid_audio_track")


def normalise_language(code: str | None) -> str | None:
    """A language tag as ISO 639-2/T ("en", "eng", "en-US" -> "eng"; "ger" -> "deu"); None when it names none."""
    if not code:
        return None
    m = _LANGUAGE.match(code.strip().lower())
    if m is None:
        return None
    base = m.group(1)
    if len(base) == 2:
        return _ONE_TO_T.get(base)
    base = _B_TO_T.get(base, base)
    return None if base in _UNDETERMINED else base


def same_language(a: str | None, b: str | None) -> bool:
    na, nb = normalise_language(a), normalise_language(b)
    return na is not None and na == nb


def is_special(stream: AudioStream) -> bool:
    """A commentary, an audio description or a hearing-impaired mix: never the main programme."""
    return stream.special or bool(stream.title and _SPECIAL_TITLE.search(stream.title))


def _usual(streams: Sequence[AudioStream]) -> AudioStream:
    main = [s for s in streams if not is_special(s)] or list(streams)
    return next((s for s in main if s.default), main[0])


def choose_track(streams: Sequence[AudioStream], choice: TrackChoice | None = None) -> AudioStream:
    """The audio stream to convert (see the module's rule). `streams` in file order, never empty.

    Raises Unprocessable (422 `audio_track_not_found`) when the user's choice matches no track.
    """
    if not streams:
        raise ValueError("no audio streams to choose from")
    if choice is None:
        return _usual(streams)
    if choice.index is not None:
        if choice.index < len(streams):
            return streams[choice.index]
    else:
        matching = [s for s in streams if same_language(s.language, choice.language)]
        if matching:
            return _usual(matching)
    available = ", ".join(f"{i} ({s.language or 'no language'})" for i, s in enumerate(streams))
    raise Unprocessable(f"The file has no {choice.describe()}; its audio tracks are: {available}.",
                        code="audio_track_not_found")
