"""Probe a media file with ffprobe and decide whether the service accepts it.

Read from a seekable file, never a pipe: an MP4 with its index (moov) at the end cannot be probed
through a pipe, and ffprobe would still report a duration for it (design brief, "Media facts").

Hostile inputs are kept out in three layers:

1. a sniff of the first bytes refuses playlists (``#EXTM3U``) and concat scripts (``ffconcat``)
   before ffprobe sees them;
2. ffprobe runs with ``-protocol_whitelist file`` (nothing but the one local file can be opened, no
   network, no ``concat:``/``subfile:`` tricks) and ``-format_whitelist`` set to the allowed demuxers,
   so a playlist, an image or an image sequence is refused by libavformat itself, before its demuxer
   reads anything;
3. the result is checked: an allowed container, at least one audio stream, a known duration under
   the cap.

The duration that counts is the chosen audio track's own (vid2mp3.media.tracks picks the track): measured
from its last packets where the container states none or may state a wrong one (vid2mp3.media.duration),
minus its first packet's time. The cap is enforced on it, and the converter verifies the MP3 against it.

``probe`` reads a file's head, tail and index only, so it also runs on a partial copy that holds just
those (vid2mp3.media.partial): pass the ranges it holds as `present`; when the probe would need more it
raises PartialCopyUndecided, never a refusal.

Refusals raise :class:`vid2mp3.errors.UnsupportedMedia` (415: ``not_media``, ``container_not_allowed``)
or :class:`vid2mp3.errors.Unprocessable` (422: ``no_audio_stream``, ``too_long``, ``unknown_duration``,
``probe_timeout``) with those stable codes.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vid2mp3.errors import Unprocessable, UnsupportedMedia
from vid2mp3.media.binaries import tool_env
from vid2mp3.media.duration import audio_end, audio_start
from vid2mp3.media.partial import FileReader, PartialCopyUndecided, index_box
from vid2mp3.media.tracks import TrackChoice, choose_track

__all__ = [
    "ALLOWED_DEMUXERS",
    "AudioStream",
    "MediaInfo",
    "PartialCopyUndecided",
    "check_media",
    "parse_ffprobe",
    "probe",
    "run_ffprobe",
    "summary_info",
    "summary_track",
]

# ffprobe's demuxer names (`format_name`), exactly as it reports them. Everything else is refused:
# notably hls/m3u8 and dash (playlists that open other files), concat (scripts), image2/*_pipe
# (images and image sequences), lavfi, tty/txt, subtitles.
ALLOWED_DEMUXERS: frozenset[str] = frozenset({
    "mov,mp4,m4a,3gp,3g2,mj2",  # MP4, MOV, M4A, 3GP
    "matroska,webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",  # MPEG program stream (VOB, .mpg)
    "asf",  # WMV, WMA
    "ogg",
    "wav",
    "w64",
    "aiff",
    "caf",
    "mp3",
    "flac",
    "aac",  # raw ADTS
    "ac3",
    "eac3",
    "wv",
    "amr",
})

_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"#EXT-X-", b"<?xml")  # HLS, concat scripts, DASH/XSPF...
_BOMS = (b"\xef\xbb\xbf",)
_DEFAULT_TIMEOUT_S = 30.0
_MAX_JSON_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class AudioStream:
    index: int  # ffprobe's stream index (all kinds of streams counted)
    codec: str
    channels: int | None
    sample_rate: int | None
    duration_s: float | None  # the probe's verdict: measured from the packets where it could be
    bit_rate: int | None = None
    position: int = 0  # among the file's audio streams, from 0 (ffmpeg's `0:a:<position>`)
    language: str | None = None
    title: str | None = None
    default: bool = False
    special: bool = False  # flagged commentary, descriptive (visual impaired) or hearing impaired
    start_s: float | None = None  # its first packet's time

    def describe(self) -> dict[str, Any]:
        """The track as the job shows it (`audio` in GET /videos/{id})."""
        return {"index": self.position, "language": self.language, "codec": self.codec, "channels": self.channels}


@dataclass(frozen=True)
class MediaInfo:
    """What the probe found in an accepted file."""

    format_name: str  # ffprobe's demuxer name, one of ALLOWED_DEMUXERS
    duration_s: float  # the container's duration
    audio: tuple[AudioStream, ...]  # never empty
    has_video: bool
    bit_rate: int | None = None
    chosen: int = 0  # the item of `audio` a conversion takes (vid2mp3.media.tracks)

    @property
    def audio_stream(self) -> AudioStream:
        """The stream a conversion uses (vid2mp3.media.tracks.choose_track)."""
        return self.audio[self.chosen]

    @property
    def audio_duration_s(self) -> float:
        """The chosen stream's own duration when known, else the container's."""
        a = self.audio_stream
        return a.duration_s if a.duration_s is not None else self.duration_s

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest, kept with the job (Job.extra["media"])."""
        a = self.audio_stream
        return {
            "audio": a.describe(),
            "format": self.format_name,
            "duration_s": round(self.duration_s, 3),
            "has_video": self.has_video,
            "audio_codec": a.codec,
            "audio_channels": a.channels,
            "audio_sample_rate": a.sample_rate,
            "audio_streams": len(self.audio),
            # What the converter needs to stream the file without probing it again (see
            # summary_info): the converted stream's own duration and bit rate.
            "audio_duration_s": round(self.audio_duration_s, 3),
            "audio_bit_rate": a.bit_rate,
        }


def summary_track(summary: Any) -> int | None:
    """The position of the audio track a summary recorded as chosen (None: none recorded)."""
    audio = summary.get("audio") if isinstance(summary, Mapping) else None
    position = audio.get("index") if isinstance(audio, Mapping) else None
    return position if isinstance(position, int) and not isinstance(position, bool) and position >= 0 else None


def summary_info(summary: Any, *, max_duration_s: float) -> MediaInfo | None:
    """The MediaInfo a `MediaInfo.summary()` describes, when it is complete and passes the rules; else None.

    Only the chosen audio stream (the one a conversion uses) is described; `audio` holds just it, with its
    position among the file's audio streams. Summaries written before `audio_duration_s` was recorded are
    incomplete (None); those without the chosen track (`audio`) describe the first.
    """
    if not isinstance(summary, Mapping):
        return None
    fmt, codec = summary.get("format"), summary.get("audio_codec")
    duration, audio_duration = _float(summary.get("duration_s")), _float(summary.get("audio_duration_s"))
    streams = summary.get("audio_streams")
    if (not isinstance(fmt, str) or fmt not in ALLOWED_DEMUXERS or not isinstance(codec, str) or not codec
            or duration is None or audio_duration is None or not 0 < audio_duration <= max_duration_s
            or isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
        return None
    has_video = summary.get("has_video")
    return MediaInfo(
        format_name=fmt,
        duration_s=duration,
        audio=(AudioStream(index=0, codec=codec, channels=_int(summary.get("audio_channels")),
                           sample_rate=_int(summary.get("audio_sample_rate")), duration_s=audio_duration,
                           bit_rate=_int(summary.get("audio_bit_rate")), position=summary_track(summary) or 0),),
        has_video=has_video if isinstance(has_video, bool) else True,
    )


def probe(
    path: str | os.PathLike[str],
    *,
    ffprobe: str,
    max_duration_s: float,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
    track: TrackChoice | None = None,
    present: Sequence[tuple[int, int]] | None = None,
) -> MediaInfo:
    """Probe the file at `path` and check it; raises UnsupportedMedia / Unprocessable when refused.

    `ffprobe` is the executable (vid2mp3.media.binaries.find_ffprobe); `max_duration_s` is usually
    ``settings.max_duration_seconds``. A missing ffprobe is a FileNotFoundError (a deployment fault).
    `track`: the user's choice of audio track (vid2mp3.media.tracks.parse_track_choice), None for the
    usual rule. `present`: for a partial copy, the byte ranges it holds (vid2mp3.media.partial); then
    PartialCopyUndecided means "probe the whole file", never "refused".
    """
    reader = FileReader.open(path, present)
    _sniff(reader)
    if present is not None:
        index = index_box(lambda offset, n: reader.read(offset, offset + n), reader.size, reader.read(0, 64))
        if index is not None and not reader.holds(*index):
            raise PartialCopyUndecided("the partial copy does not hold the file's index")
    info = _accept(run_ffprobe(path, ffprobe=ffprobe, timeout_s=timeout_s), track)
    if present is not None:
        start = audio_start(os.fspath(path), format_name=info.format_name, stream_index=info.audio_stream.index,
                            ffprobe=ffprobe, present=present)
        if start is not None:
            info = _with_chosen(info, start_s=start)
    a = info.audio_stream
    end = audio_end(os.fspath(path), format_name=info.format_name, stream_index=a.index,
                    sample_rate=a.sample_rate, ffprobe=ffprobe, present=present)
    return _check_duration(_measured(info, end), max_duration_s)


def run_ffprobe(
    path: str | os.PathLike[str], *, ffprobe: str, timeout_s: float = _DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for the local file at `path`, read with the restrictions above."""
    target = "file:" + os.path.abspath(os.fspath(path))  # "file:": never read as another protocol
    cmd = [
        ffprobe, "-hide_banner", "-v", "error",
        "-protocol_whitelist", "file",
        "-format_whitelist", ",".join(sorted(ALLOWED_DEMUXERS)),
        "-print_format", "json", "-show_format", "-show_streams",
        target,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
                              env=tool_env())
    except subprocess.TimeoutExpired:
        raise Unprocessable("The file took too long to analyse.", code="probe_timeout") from None
    stderr = done.stderr.decode("utf-8", "replace")
    if "not on whitelist" in stderr:
        raise _container_not_allowed()
    if done.returncode != 0 or len(done.stdout) > _MAX_JSON_BYTES:
        raise _not_media()
    try:
        data = json.loads(done.stdout or b"{}")
    except ValueError:
        raise _not_media() from None
    if not isinstance(data, dict) or not isinstance(data.get("format"), dict):
        raise _not_media()
    return data


def check_media(data: Mapping[str, Any], *, max_duration_s: float, track: TrackChoice | None = None) -> MediaInfo:
    """Apply the rules to ffprobe's JSON (durations as stated) and return the typed result."""
    return _check_duration(_accept(data, track), max_duration_s)


def _accept(data: Mapping[str, Any], track: TrackChoice | None) -> MediaInfo:
    """The parsed result with its audio track chosen; refused when the container or the audio is missing."""
    info = parse_ffprobe(data)
    if info.format_name not in ALLOWED_DEMUXERS:
        raise _container_not_allowed()
    if not info.audio:
        raise Unprocessable("The file has no audio stream to convert.", code="no_audio_stream")
    return replace(info, chosen=choose_track(info.audio, track).position)


def _measured(info: MediaInfo, end: float | None) -> MediaInfo:
    """`info` with the chosen stream's duration measured to `end` (its last packet's end) from its start."""
    a = info.audio_stream
    if end is None:
        return info
    duration = end - (a.start_s or 0.0)
    if not (math.isfinite(duration) and duration > 0):
        return info
    return replace(_with_chosen(info, duration_s=duration), duration_s=info.duration_s or duration)


def _with_chosen(info: MediaInfo, **changes: Any) -> MediaInfo:
    audio = list(info.audio)
    audio[info.chosen] = replace(audio[info.chosen], **changes)
    return replace(info, audio=tuple(audio))


def _check_duration(info: MediaInfo, max_duration_s: float) -> MediaInfo:
    """The cap, on the chosen audio stream's own duration (the container's when it is not known)."""
    duration = info.audio_duration_s
    if not (duration > 0):
        raise Unprocessable("The file's duration cannot be determined.", code="unknown_duration")
    if duration > max_duration_s:
        raise Unprocessable(
            f"The file is longer than the limit of {_hms(max_duration_s)}.", code="too_long"
        )
    return info


def parse_ffprobe(data: Mapping[str, Any]) -> MediaInfo:
    """The typed view of ffprobe's JSON, without judging it. Missing numbers become None / 0."""
    fmt = data.get("format") or {}
    if not isinstance(fmt, Mapping):
        raise _not_media()
    streams = [s for s in (data.get("streams") or []) if isinstance(s, Mapping)]
    audio = tuple(
        _audio_stream(s, position)
        for position, s in enumerate(s for s in streams if s.get("codec_type") == "audio")
    )
    # Cover art is a "video" stream with the attached_pic disposition; it does not make a video.
    has_video = any(
        s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        for s in streams
    )
    duration = _float(fmt.get("duration"))
    if duration is None:
        known = [a.duration_s for a in audio if a.duration_s is not None]
        duration = max(known) if known else 0.0
    return MediaInfo(
        format_name=str(fmt.get("format_name") or ""),
        duration_s=duration,
        audio=audio,
        has_video=has_video,
        bit_rate=_int(fmt.get("bit_rate")),
    )


def _audio_stream(s: Mapping[str, Any], position: int) -> AudioStream:
    tags = s.get("tags") if isinstance(s.get("tags"), Mapping) else {}
    flags = s.get("disposition") if isinstance(s.get("disposition"), Mapping) else {}
    assert isinstance(tags, Mapping) and isinstance(flags, Mapping)
    lowered = {str(k).lower(): v for k, v in tags.items()}
    language = lowered.get("language")
    title = lowered.get("title") or lowered.get("handler_name")
    return AudioStream(
        index=_int(s.get("index")) or 0,
        codec=str(s.get("codec_name") or "unknown"),
        channels=_int(s.get("channels")),
        sample_rate=_int(s.get("sample_rate")),
        duration_s=_float(s.get("duration")) or _tag_duration(tags),
        bit_rate=_int(s.get("bit_rate")),
        position=position,
        language=str(language) if language and str(language).lower() not in ("und", "") else None,
        title=str(title)[:200] if title else None,
        default=bool(flags.get("default")),
        special=any(flags.get(k) for k in ("comment", "visual_impaired", "hearing_impaired", "descriptions")),
        start_s=_signed_float(s.get("start_time")),
    )


def _signed_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _sniff(reader: FileReader) -> None:
    head = reader.read(0, 64)
    if not head:
        raise UnsupportedMedia("The file is empty.", code="not_media")
    for bom in _BOMS:
        head = head.removeprefix(bom)
    if head.lstrip().startswith(_PLAYLIST_MAGIC):
        raise _container_not_allowed()


def _not_media() -> UnsupportedMedia:
    return UnsupportedMedia("The file is not an audio or video file we can read.", code="not_media")


def _container_not_allowed() -> UnsupportedMedia:
    return UnsupportedMedia(
        "This kind of file is not accepted (playlists, scripts and images are not); "
        "upload an audio or video file such as MP4, MOV, MKV, WebM, AVI, MP3, WAV or FLAC.",
        code="container_not_allowed",
    )


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_TAG_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _tag_duration(tags: Any) -> float | None:
    """Matroska keeps a stream's duration in a DURATION tag ("00:01:02.500000000")."""
    if not isinstance(tags, Mapping):
        return None
    for key, value in tags.items():
        if str(key).upper() == "DURATION":
            m = _TAG_DURATION.match(str(value).strip())
            if m:
                return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


def _hms(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min" if m else f"{h} h"
    if m:
        return f"{m} min {sec:02d} s" if sec else f"{m} min"
    return f"{sec} s"
