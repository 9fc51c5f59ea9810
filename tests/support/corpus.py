"""A corpus of the videos people really upload, made here by the tools that make them (issue 11).

Not ffmpeg's muxers (the converter was always right on those) but Chromium's MediaRecorder (Debian's
``chromium``, headless, fake camera and microphone, driven by Playwright), GStreamer (``gst-launch-1.0``:
fragmented mp4mux, qtmux, 3gppmux, avimux, mpegtsmux, flvmux) and mkvmerge (``mkvtoolnix``); ffmpeg only
where a file is then edited by hand (an MP4 edit list, a Matroska header duration), as broken muxers do.
``make test`` installs the tools (infra/system/packages.sh); a missing one fails the test that needs it, loudly.

Each file lasts a few seconds (160x120 video, test tones), is made once and kept under
``.vid2mp3/cache/corpus/<hash of its recipe>/``; changing a recipe makes it anew. Every Sample says what a
player plays of it: how long the audio track a conversion must take lasts (by construction), which track
that is, and with how many channels.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".vid2mp3" / "cache" / "corpus"
CHROMIUM = "/usr/bin/chromium"
# Chromium as root needs --no-sandbox; the rest keeps it off the (closed) network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu", "--use-fake-device-for-media-stream",
                 "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
RECORD_MS = 3000


@dataclass(frozen=True)
class Sample:
    """One file of the corpus and what a player plays of it."""

    name: str
    made_by: str  # chromium, gstreamer, mkvmerge, ffmpeg+edit
    kind: str  # the class of the issue it stands for
    audio_s: float  # how long the track to convert plays (by construction; MediaRecorder: about)
    track: int = 0  # its position among the file's audio tracks
    channels: int = 2
    choice: str | None = None  # `audio_track` the user sends
    tolerance_s: float = 0.25  # of audio_s (a recording's length is only roughly what was asked)
    recipe: tuple[str, ...] = field(default=(), repr=False)  # what the file is made of (the cache key)


# --- GStreamer pipelines ----------------------------------------------------------------------------------

def _video(seconds: float) -> str:
    frames = round(seconds * 15)
    return (f"videotestsrc num-buffers={frames} ! video/x-raw,width=160,height=120,framerate=15/1 ! "
            "x264enc speed-preset=ultrafast key-int-max=15 ! h264parse")


def _tone(seconds: float, *, rate: int = 48000, channels: int = 2, freq: int = 440, offset_s: float = 0.0,
          fmt: str = "") -> str:
    buffers = round(seconds * rate / 960)
    offset = f" timestamp-offset={round(offset_s * 1e9)}" if offset_s else ""
    caps = f"audio/x-raw,rate={rate},channels={channels}" + (f",format={fmt}" if fmt else "")
    return (f"audiotestsrc num-buffers={buffers} samplesperbuffer=960 freq={freq} volume=0.5{offset} ! "
            f"audioconvert ! audioresample ! {caps}")


def _centre_only(seconds: float) -> str:
    """5.1 with the tone in the centre channel only, where films put the dialogue."""
    matrix = "<" + ", ".join(f"<(float){1.0 if i == 2 else 0.0}>" for i in range(6)) + ">"
    return (f"{_tone(seconds, channels=1)} ! audioconvert mix-matrix=\"{matrix}\" ! "
            "audio/x-raw,channels=6,channel-mask=(bitmask)0x3f")


def _mux(mux: str, *branches: str) -> str:
    return f"{mux} name=m ! filesink location={{out}} " + " ".join(f"{b} ! m." for b in branches)


GSTREAMER: dict[str, tuple[str, str, float, int]] = {
    # name: (class, pipeline, seconds of audio, channels)
    "gst-fragmented.mp4": ("fragmented MP4, no duration in its header", _mux(
        "mp4mux fragment-duration=500 streamable=true", _video(3), _tone(3) + " ! voaacenc bitrate=64000"), 3.0, 2),
    "gst-camera.avi": ("AVI whose audio runs past the video and the header", _mux(
        "avimux", _video(2), _tone(4, fmt="S16LE")), 4.0, 2),
    "gst-late-audio.mov": ("audio that starts seconds after the video", _mux(
        "qtmux", _video(4), _tone(2.5, offset_s=1.5) + " ! voaacenc bitrate=64000 ! aacparse"), 2.5, 2),
    "gst-phone.3gp": ("phone 3GP with AMR", _mux(
        "3gppmux", _video(3), _tone(3, rate=8000, channels=1, fmt="S16LE") + " ! amrnbenc"), 3.0, 1),
    "gst-camcorder.m2ts": ("camcorder M2TS with AC-3", _mux(
        "mpegtsmux m2ts-mode=true", _video(3), _tone(3) + " ! avenc_ac3 bitrate=192000 ! ac3parse"), 3.0, 2),
    "gst-broadcast.ts": ("broadcast MPEG-TS with MP2, timestamps far from 0", _mux(
        "mpegtsmux", _video(3), _tone(3) + " ! avenc_mp2 bitrate=128000 ! mpegaudioparse"), 3.0, 2),
    "gst-live.flv": ("live-style FLV", _mux(
        "flvmux streamable=true", _video(3), _tone(3, rate=44100) + " ! voaacenc bitrate=64000"), 3.0, 2),
    "gst-alac.mov": ("QuickTime MOV with ALAC", _mux("qtmux", _video(3), _tone(3, fmt="S16LE") + " ! avenc_alac"),
                     3.0, 2),
    "gst-pcm.mov": ("QuickTime MOV with PCM", _mux("qtmux", _video(3), _tone(3, fmt="S16BE")), 3.0, 2),
    "gst-ac3-51.mp4": ("AC-3 5.1 (dialogue in the centre)", _mux(
        "mp4mux", _video(3), _centre_only(3) + " ! avenc_ac3 bitrate=384000 ! ac3parse"), 3.0, 6),
    "gst-languages.mp4": ("several audio tracks in an MP4: French first", _mux(
        "mp4mux", _video(3), _tone(2, freq=330) + ' ! voaacenc ! taginject tags="language-code=fra"',
        _tone(3) + ' ! voaacenc ! taginject tags="language-code=eng"'), 2.0, 2),
}

# Raw parts that mkvmerge assembles (GStreamer writes them).
PARTS: dict[str, str] = {
    "video3.mkv": f"{_video(3)} ! matroskamux ! filesink location={{out}}",
    "video5.mkv": f"{_video(5)} ! matroskamux ! filesink location={{out}}",
    "commentary.mka": f"{_tone(2, freq=330)} ! opusenc ! matroskamux ! filesink location={{out}}",
    "description.mka": f"{_tone(2.5, freq=550)} ! opusenc ! matroskamux ! filesink location={{out}}",
    "main.mka": f"{_tone(3)} ! opusenc ! matroskamux ! filesink location={{out}}",
    "german.mka": f"{_tone(3.5, freq=660)} ! opusenc ! matroskamux ! filesink location={{out}}",
    "eac3-51.eac3": f"{_centre_only(3)} ! avenc_eac3 bitrate=384000 ! filesink location={{out}}",
    "french.m4a": f"{_tone(2, freq=330)} ! voaacenc ! mp4mux ! filesink location={{out}}",
    "long.mka": f"{_tone(20)} ! opusenc ! matroskamux ! filesink location={{out}}",
}

COMMENTARY = ["--language", "0:eng", "--track-name", "0:Director's commentary", "--commentary-flag", "0:1",
              "--default-track-flag", "0:1", "commentary.mka",
              "--language", "0:eng", "--track-name", "0:Audio description", "--visual-impaired-flag", "0:1",
              "--default-track-flag", "0:0", "description.mka",
              "--language", "0:eng", "--default-track-flag", "0:0", "main.mka",
              "--language", "0:ger", "--default-track-flag", "0:0", "german.mka"]
MKVMERGE: dict[str, tuple[str, list[str]]] = {
    "mkvmerge-commentary.mkv": ("several audio tracks: commentary, description, main, German",
                                ["video3.mkv", *COMMENTARY]),
    "mkvmerge-shifted.mkv": ("Matroska whose header duration is shorter than its shifted audio",
                             ["--disable-track-statistics-tags", "video3.mkv", "--sync", "0:2000", "main.mka"]),
    "mkvmerge-eac3-51.mkv": ("E-AC-3 5.1 (dialogue in the centre)", ["video3.mkv", "eac3-51.eac3"]),
    # not a class of its own: a header that hides most of the audio, to check the cap is on the audio
    "mkvmerge-hidden-length.mka": ("20 s of audio whose header says 1 s", [
        "--disable-track-statistics-tags", "long.mka"]),
    "mkvmerge-languages.mkv": ("several audio tracks: French first", [
        "video3.mkv", "--language", "0:fre", "french.m4a", "--language", "0:eng", "--default-track-flag", "0:0",
        "main.mka"]),
}

RECORDINGS: dict[str, str] = {  # name: MediaRecorder mimeType
    "chromium-recording.webm": "video/webm;codecs=vp8,opus",
    "chromium-recording.mp4": "video/mp4;codecs=avc1,opus",
    "chromium-recording.mkv": "video/x-matroska;codecs=avc1,opus",
}

SAMPLES: tuple[Sample, ...] = (
    *(Sample(name, "chromium", "browser recording (MediaRecorder), no duration, no cues", RECORD_MS / 1000,
             channels=1, tolerance_s=0.4, recipe=("chromium", mime, str(RECORD_MS)))
      for name, mime in RECORDINGS.items()),
    *(Sample(name, "gstreamer", kind, seconds, channels=channels, recipe=("gstreamer", pipeline))
      for name, (kind, pipeline, seconds, channels) in GSTREAMER.items()),
    Sample("gst-languages.mp4", "gstreamer", "the user chose English, the second track of an MP4", 3.0, track=1,
           choice="eng", recipe=("gstreamer", GSTREAMER["gst-languages.mp4"][1])),
    Sample("mkvmerge-commentary.mkv", "mkvmerge", MKVMERGE["mkvmerge-commentary.mkv"][0], 3.0, track=2),
    Sample("mkvmerge-commentary.mkv", "mkvmerge", "the user chose German", 3.5, track=3, choice="de"),
    Sample("mkvmerge-commentary.mkv", "mkvmerge", "the user chose track 1", 2.5, track=1, choice="1"),
    Sample("mkvmerge-languages.mkv", "mkvmerge", "the user chose English, the second track", 3.0, track=1,
           choice="en"),
    Sample("mkvmerge-languages.mkv", "mkvmerge", MKVMERGE["mkvmerge-languages.mkv"][0], 2.0, track=0),
    Sample("mkvmerge-shifted.mkv", "mkvmerge", MKVMERGE["mkvmerge-shifted.mkv"][0], 3.0),
    Sample("mkvmerge-eac3-51.mkv", "mkvmerge", MKVMERGE["mkvmerge-eac3-51.mkv"][0], 3.0, channels=6),
    # A broadcast recording carries a service description table (channel names in a DVB character set):
    # it crashed the layer's static ffprobe (vid2mp3.media.binaries.tool_env).
    Sample("ffmpeg-broadcast.ts", "ffmpeg", "broadcast MPEG-TS with a service table, MP2, clock at 10 h", 3.0,
           recipe=("ffmpeg", *(BROADCAST_TS := (
               "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i",
               "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo", "-t", "3",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "mp2", "-b:a", "192k",
               "-metadata", "service_provider=Rundfunk", "-metadata", "service_name=Das Erste HD",
               "-output_ts_offset", "36000", "-f", "mpegts")))),
    Sample("ffmpeg-edit-list.mp4", "ffmpeg+edit", "MP4 whose edit list plays less than its samples", 2.0, channels=1,
           recipe=("ffmpeg", "aac 4 s, edit list 2 s")),
)

HIDDEN_LENGTH = Sample("mkvmerge-hidden-length.mka", "mkvmerge", MKVMERGE["mkvmerge-hidden-length.mka"][0], 20.0)
EDITS = {"mkvmerge-shifted.mkv": 2.5, "mkvmerge-hidden-length.mka": 1.0}  # header durations written over

for _s in (*SAMPLES, HIDDEN_LENGTH):  # mkvmerge files depend on their parts' recipes and on the edits
    if _s.made_by == "mkvmerge" and not _s.recipe:
        object.__setattr__(_s, "recipe", ("mkvmerge", json.dumps(MKVMERGE[_s.name][1]), json.dumps(PARTS),
                                          str(EDITS.get(_s.name))))


def key(sample: Sample) -> str:
    return hashlib.sha256(json.dumps(sample.recipe).encode()).hexdigest()[:16]


def ids(samples: Iterable[Sample]) -> list[str]:
    return [f"{s.name}:{s.choice}" if s.choice else s.name for s in samples]


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: `make test` installs it (infra/system/packages.sh), "
                           "or install it yourself")
    return found


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "GST_DEBUG": "0"})
    if done.returncode not in (0, 1) or (done.returncode == 1 and Path(cmd[0]).name != "mkvmerge"):
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({done.returncode}): {done.stderr[-1500:]}")


def _gst(pipeline: str, out: Path) -> None:
    _run([tool("gst-launch-1.0"), "-q", "-e", *_split(pipeline.format(out=str(out)))])


def _split(pipeline: str) -> list[str]:
    import shlex

    return shlex.split(pipeline)


def _patch_matroska_duration(path: Path, seconds: float) -> None:
    """Overwrite the Segment Info's Duration (ID 0x4489), as a muxer that wrote it too early would have."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")
    if at < 0:
        raise RuntimeError("no Duration element to patch")
    size = data[at + 2] & 0x7F
    scale = 1_000_000  # TimestampScale: mkvmerge's default, 1 ms
    ticks = seconds * 1e9 / scale
    data[at + 3:at + 3 + size] = struct.pack(">d", ticks) if size == 8 else struct.pack(">f", ticks)
    path.write_bytes(bytes(data))


def _edit_list_mp4(out: Path, ffmpeg: str) -> None:
    """4 s of AAC whose edit list presents only the first 2 s (a cut that kept the samples)."""
    _run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
          "testsrc2=size=160x120:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
          "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
          "-movflags", "+faststart", str(out)])
    data = bytearray(out.read_bytes())
    timescale = struct.unpack(">I", data[data.find(b"mvhd") + 16:data.find(b"mvhd") + 20])[0]
    at = -1
    patched = 0
    while (at := data.find(b"elst", at + 1)) >= 0:  # every track: video and audio end at 2 s
        if data[at + 4] == 0 and struct.unpack(">I", data[at + 8:at + 12])[0] >= 1:
            data[at + 12:at + 16] = struct.pack(">I", 2 * timescale)
            patched += 1
    if not patched:
        raise RuntimeError("no edit list to patch")
    out.write_bytes(bytes(data))


def _record(mimes: dict[str, str], directory: Path) -> None:
    """Record a few seconds of the fake camera and microphone per MIME type in one headless Chromium."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is not installed: `make test` installs Debian's chromium")
    page_file = directory / "record.html"  # a file: page is a secure context (getUserMedia needs one)
    page_file.write_text("<!doctype html><title>record</title>")
    script = """async ([mime, ms]) => {
      const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 160, height: 120}});
      const recorder = new MediaRecorder(stream, {mimeType: mime});
      const parts = [];
      recorder.ondataavailable = (e) => parts.push(e.data);
      const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
      recorder.start(1000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      recorder.stop();
      await stopped;
      stream.getTracks().forEach((t) => t.stop());
      const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
      let text = '';
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            for out, mime in mimes.items():
                if not page.evaluate("(m) => MediaRecorder.isTypeSupported(m)", mime):
                    raise RuntimeError(f"Chromium cannot record {mime}")
                Path(out).write_bytes(base64.b64decode(page.evaluate(script, [mime, RECORD_MS])))
        finally:
            browser.close()


def build(samples: Iterable[Sample], ffmpeg: str, cache: Path = CACHE) -> dict[str, Path]:
    """The files of `samples` by name, made when not cached yet."""
    wanted = {s.name: s for s in samples}
    paths = {name: cache / key(s) / name for name, s in wanted.items()}
    missing = {name: s for name, s in wanted.items() if not paths[name].exists()}
    if not missing:
        return paths
    work = cache / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    made: dict[str, Path] = {}
    record = {str(work / name): RECORDINGS[name] for name in missing if name in RECORDINGS}
    if record:
        _record(record, work)
    parts_needed = any(s.made_by == "mkvmerge" for s in missing.values())
    if parts_needed:
        for part, pipeline in PARTS.items():
            _gst(pipeline, work / part)
    for name, s in missing.items():
        out = work / name
        if s.made_by == "gstreamer":
            _gst(GSTREAMER[name][1], out)
        elif s.made_by == "mkvmerge":
            _run([tool("mkvmerge"), "-q", "-o", str(out), *MKVMERGE[name][1]], cwd=work)
            if name in EDITS:
                _patch_matroska_duration(out, EDITS[name])
        elif s.made_by == "ffmpeg+edit":
            _edit_list_mp4(out, ffmpeg)
        elif s.made_by == "ffmpeg":
            _run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", *s.recipe[1:], str(out)])
        made[name] = out
    for name, out in {**made, **{Path(k).name: Path(k) for k in record}}.items():
        if not out.exists() or out.stat().st_size == 0:
            raise RuntimeError(f"{name} was not made")
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        os.replace(out, paths[name])
    shutil.rmtree(work, ignore_errors=True)
    return paths


def sample_files(ffmpeg: str) -> Callable[[Sample], Path]:
    """A lookup of each sample's file, the whole corpus made (or found in the cache) once."""
    paths = build((*SAMPLES, HIDDEN_LENGTH), ffmpeg)
    return lambda s: paths[s.name]
