"""The ffmpeg command of a conversion: a pure function of what the probe found and what the job asks.

Every line of the design brief's "Media facts" shows up here:

- the input is a local, seekable file named with ``file:`` (so a name is never read as another
  protocol), or ffmpeg's standard input (``pipe:0``) for what vid2mp3.convert.source decided can be
  streamed (an MP4 with its index at the end cannot be read from a pipe as it is); always with
  ``-protocol_whitelist file,pipe`` so nothing the input references can be opened elsewhere, and
  with its demuxer forced to the one the probe found (the probe only accepts allow-listed containers);
- ``-t`` at the duration cap, ``-xerror`` (stop at the first error instead of writing a short file),
  ``-nostdin``;
- only the chosen audio stream (``-map 0:a:<position>``, vid2mp3.media.tracks; ``-vn -sn -dn``), no
  metadata of the source (it can hold a phone's location) except an ID3v2.3 title made from the
  original filename;
- more than two channels (AC-3/E-AC-3 5.1) downmixed to stereo (``-ac 2``: the centre channel, where
  the dialogue is, goes into both sides);
- ``-c:a copy`` when the audio already is MP3, else libmp3lame CBR at the job's bitrate, written to a
  file (seekable, so the Xing/LAME header gets the real length);
- ``-progress pipe:1`` for vid2mp3.convert.runner.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from vid2mp3.media.probe import MediaInfo

MP3_CODEC = "mp3"
MAX_TITLE_CHARS = 200
_BITRATE = re.compile(r"^(\d{2,3})k$")


@dataclass(frozen=True)
class Plan:
    argv: tuple[str, ...]
    copy: bool  # the source's MP3 stream is copied, not re-encoded
    expected_duration_s: float  # what the output must decode to (the source's audio, capped)
    bitrate: str  # "192k"; for a copy, the source stream's when known, else "" (measured later)
    title: str


def title_from_filename(filename: str) -> str:
    """The original name without directories or extension, printable, at most MAX_TITLE_CHARS."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(base)
    name = stem if stem and ext else base
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in name)
    title = " ".join(cleaned.split())[:MAX_TITLE_CHARS]
    return title or "audio"


def demuxer_name(format_name: str) -> str:
    """ffprobe reports a demuxer by its full name list ("mov,mp4,m4a,3gp,3g2,mj2"); `-f` takes one."""
    return format_name.split(",", 1)[0].strip()


def kbps_label(bits_per_second: float) -> str:
    return f"{max(1, round(bits_per_second / 1000))}k"


def plan_conversion(
    info: MediaInfo,
    *,
    ffmpeg: str,
    source: Path | None,
    output: Path,
    bitrate: str,
    filename: str,
    max_duration_s: float,
) -> Plan:
    """The command that turns `source` (probed as `info`) into the MP3 file `output`.

    `source` None: the input comes through standard input (`pipe:0`), in the container `info` names.
    """
    match = _BITRATE.match(bitrate)
    if match is None:
        raise ValueError(f"bitrate must look like '192k', not {bitrate!r}")
    audio = info.audio_stream
    copy = audio.codec == MP3_CODEC
    title = title_from_filename(filename)
    cap = f"{max_duration_s:.3f}"
    argv: list[str] = [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror",
        # input: local file only, the probed demuxer, at most the cap
        "-protocol_whitelist", "file,pipe",
        "-f", demuxer_name(info.format_name),
        "-t", cap,
        "-i", "pipe:0" if source is None else f"file:{source}",
        # output: the chosen audio stream only, no metadata from the source
        "-map", f"0:a:{audio.position}", "-vn", "-sn", "-dn",
        "-map_metadata", "-1", "-map_chapters", "-1",
    ]
    if copy:
        argv += ["-c:a", "copy"]
        label = kbps_label(audio.bit_rate) if audio.bit_rate else ""
    else:
        argv += ["-c:a", "libmp3lame", "-b:a", bitrate]  # -b:a without -q:a: constant bitrate
        if audio.channels is not None and audio.channels > 2:
            argv += ["-ac", "2"]
        label = bitrate
    argv += [
        "-id3v2_version", "3", "-write_xing", "1",
        "-metadata", f"title={title}",
        "-progress", "pipe:1",
        "-f", "mp3", "-y", f"file:{output}",
    ]
    expected = min(info.audio_duration_s, max_duration_s)
    return Plan(argv=tuple(argv), copy=copy, expected_duration_s=expected, bitrate=label, title=title)
