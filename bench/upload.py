"""Resumable (tus) upload throughput through the emulated API, against a direct GridFS write of the same
bytes measured in the same run, and the upload function's peak memory for a 100 MB and a 1 GiB upload.

    .venv/bin/python bench/upload.py [--sizes-mib 100,1024] [--api-url URL]

Uses the running local stack (`make run`) when there is one, else starts one as `make run` does and
stops it afterwards. A fresh user registers and logs in; each file is a real video (raw video frames and
a tone in Matroska, made by the ffmpeg layer's ffmpeg in seconds), so the upload goes all the way: every
4 MiB part through API Gateway and the TOKEN authorizer into GridFS, the probe of the stored file at the
last part, the job and its message.

- tus: the tuspy client (a standard tus client) sends the file in 4 MiB parts; timed from the POST to the
  last PATCH's answer. Per-part latencies are reported too.
- baseline: the same bytes written to the same MongoDB-wire server directly, with pymongo's GridFSBucket
  (the reference GridFS client), in the same run, before and after the uploads (the better one counts).
- memory: the peak RSS of the emulator's UploadFunction worker processes (VmHWM, reset before each
  upload, and VmRSS sampled meanwhile): what Lambda bills as "Max Memory Used".

Prints one JSON object with each goal beside its measured value (and progress lines to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client import MIB, STATE, local_stack, make_user, request, say  # noqa: E402

LAYER = STATE / "build" / "layers" / "ffmpeg"
WORKERS = STATE / "emulator" / "tmp-"  # + the emulator port
PART = 4 * MIB
GOAL_RATIO = 0.7
GOAL_RSS_MIB = 150.0
GOAL_FLAT = 0.10


def make_video(path: Path, size_mib: float) -> Path:
    """A real Matroska video of about `size_mib` MiB: raw 320x240 frames and a tone, made in seconds."""
    from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg

    ffmpeg = find_ffmpeg(None, {LAYERS_DIRS_ENV: str(LAYER), "PATH": os.environ.get("PATH", "")})
    per_second = 320 * 240 * 1.5 * 25 + 44100 * 4  # yuv420p frames at 25 fps, and 16-bit stereo PCM
    seconds = size_mib * MIB / per_second
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100,aformat=channel_layouts=stereo",
                    "-t", f"{seconds:.3f}", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
                    str(path)], check=True, timeout=600)
    return path


# --- the baseline: a direct GridFS write -------------------------------------------------------------


def direct_gridfs_mib_per_s(mongodb_uri: str, path: Path) -> float:
    """pymongo's GridFSBucket writing the file's bytes to the stack's server, read from the same file."""
    import gridfs
    import pymongo

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
    with client:
        bucket = gridfs.GridFSBucket(client["vid2mp3_bench"], bucket_name="direct")
        with open(path, "rb") as source:
            t0 = time.perf_counter()
            file_id = bucket.upload_from_stream(path.name, source)
            elapsed = time.perf_counter() - t0
        bucket.delete(file_id)
    return path.stat().st_size / MIB / elapsed


# --- the upload function alone, in this process ----------------------------------------------------


def function_alone_mib_per_s(stack: dict[str, Any], token: str, path: Path) -> float:
    """The upload function's own throughput: its handler called in this process with the events API Gateway
    would send (bodies base64-encoded beforehand), against the stack's services. What the emulator adds
    on top (the HTTP request, the event's JSON through a pipe to its worker and back) is the difference."""
    import base64

    params = stack["parameters"]
    os.environ.update({"DATABASE_URL": params["DatabaseUrl"], "MONGODB_URI": params["MongodbUri"],
                       "RABBITMQ_URL": params["RabbitmqUrl"], "JWT_SECRET": params["JwtSecret"],
                       "PUBLIC_BASE_URL": stack["api_url"], "FFPROBE_PATH": str(LAYER / "bin" / "ffprobe")})
    from functions.upload import app  # the upload function's entry point

    # The bench's own user, as the authorizer would name it (the function checks the account exists).
    status, _, raw = request("GET", stack["api_url"] + "/auth/me", headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        raise SystemExit(f"/auth/me failed: {status} {raw[:200]!r}")
    me = json.loads(raw)
    user, email = str(me["id"]), str(me["email"])

    def event(method: str, upload_id: str | None, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
        resource = "/uploads/{id}" if upload_id else "/uploads"
        return {"resource": resource, "path": resource.replace("{id}", upload_id or ""), "httpMethod": method,
                "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
                "queryStringParameters": None, "multiValueQueryStringParameters": None,
                "pathParameters": {"id": upload_id} if upload_id else None, "stageVariables": None,
                "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "v1",
                                   "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"},
                                   "authorizer": {"principalId": user, "user_id": user, "email": email}},
                "body": base64.b64encode(body).decode() if body else None, "isBase64Encoded": bool(body)}

    size = path.stat().st_size
    tus = {"Tus-Resumable": "1.0.0"}
    created = app.handler(event("POST", None, {**tus, "Upload-Length": str(size)}, None), None)
    upload_id = created["headers"]["Location"].rsplit("/", 1)[1]
    spent = 0.0
    with open(path, "rb") as source:
        for offset in range(0, size, PART):
            patch = event("PATCH", upload_id, {**tus, "Upload-Offset": str(offset),
                                               "Content-Type": "application/offset+octet-stream"}, source.read(PART))
            t0 = time.perf_counter()
            answer = app.handler(patch, None)
            spent += time.perf_counter() - t0
            if answer["statusCode"] != 204:
                raise SystemExit(f"in-process PATCH failed: {answer}")
    return size / MIB / spent


# --- the upload function's workers ------------------------------------------------------------------


def upload_workers(port: str) -> list[int]:
    """Live processes whose cwd is an UploadFunction worker directory of the emulator."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(f"{WORKERS}{port}") and "UploadFunction" in cwd:
            found.append(int(entry.name))
    return sorted(found)


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Polls VmRSS of every upload worker while an upload is in flight."""

    def __init__(self, port: str, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.interval_s = interval_s
        self.peak_kib: dict[int, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for pid in upload_workers(self.port):
                self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), status_kib(pid, "VmRSS"))
            time.sleep(self.interval_s)


# --- one tus upload ---------------------------------------------------------------------------------


def tus_upload(api: str, token: str, path: Path, port: str) -> dict[str, Any]:
    from tusclient import client

    for pid in upload_workers(port):  # the peak of this upload only
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
    sampler = Sampler(port)
    sampler.start()
    tus = client.TusClient(f"{api}/uploads", headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(str(path), chunk_size=PART, metadata={"filename": path.name})
    size = path.stat().st_size
    parts: list[float] = []
    t0 = time.perf_counter()
    uploader.set_url(uploader.create_url())
    uploader.offset = 0
    while uploader.offset < size:
        t = time.perf_counter()
        uploader.upload_chunk()  # type: ignore[no-untyped-call]
        parts.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    sampler.stop_flag.set()
    sampler.join()
    job = uploader.request.response_headers.get("vid2mp3-job", "") if uploader.request else ""
    pids = sorted(sampler.peak_kib)
    peak_kib = max((max(status_kib(p, "VmHWM"), sampler.peak_kib[p]) for p in pids), default=0)
    parts.sort()
    return {
        "bytes": size,
        "seconds": round(elapsed, 2),
        "mib_per_s": round(size / MIB / elapsed, 1),
        "parts": len(parts),
        "part_ms_p50": round(1000 * statistics.median(parts), 1),
        "part_ms_p95": round(1000 * parts[int(0.95 * (len(parts) - 1))], 1),
        "worker_peak_rss_mib": round(peak_kib / 1024, 1),
        "workers": len(pids),
        "job": job,
    }


def bench(stack: dict[str, Any], sizes_mib: list[float], work: Path) -> dict[str, Any]:
    api = stack["api_url"].rstrip("/")
    port = stack["endpoint"].rsplit(":", 1)[1]
    mongodb_uri = stack["parameters"]["MongodbUri"]
    token, _ = make_user(api)
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    status, _, _ = request("GET", api + "/videos", headers=auth)  # a warm worker before measuring
    assert status == 200, status
    uploads: dict[str, Any] = {}
    baselines: list[float] = []
    for size_mib in sizes_mib:
        video = make_video(work / f"bench-{int(size_mib)}.mkv", size_mib)
        say(f"{video.name}: {video.stat().st_size / MIB:.0f} MiB")
        baselines.append(direct_gridfs_mib_per_s(mongodb_uri, video))
        say(f"  direct GridFS write: {baselines[-1]:.1f} MiB/s")
        run = tus_upload(api, token, video, port)
        say(f"  tus upload: {run['seconds']} s, {run['mib_per_s']} MiB/s, part p50 {run['part_ms_p50']} ms, "
            f"worker peak RSS {run['worker_peak_rss_mib']} MiB")
        baselines.append(direct_gridfs_mib_per_s(mongodb_uri, video))
        run["function_alone_mib_per_s"] = round(function_alone_mib_per_s(stack, token, video), 1)
        say(f"  the upload function alone (in this process): {run['function_alone_mib_per_s']} MiB/s")
        job_id = run.pop("job").rsplit("/", 1)[-1]
        if job_id:
            request("DELETE", f"{api}/videos/{job_id}", headers=auth)
        uploads[f"{int(size_mib)}MiB"] = run
        video.unlink()
    largest = uploads[f"{int(max(sizes_mib))}MiB"]
    direct = max(baselines)
    ratio = largest["mib_per_s"] / direct
    alone = largest["function_alone_mib_per_s"] / direct
    peaks = [u["worker_peak_rss_mib"] for u in uploads.values()]
    spread = (max(peaks) - min(peaks)) / min(peaks) if min(peaks) else None
    return {
        "uploads": uploads,
        "direct_gridfs_mib_per_s": round(direct, 1),
        "goals": {
            "tus throughput vs direct GridFS write (largest file)": {"goal": f">= {GOAL_RATIO}",
                                                                     "measured": round(ratio, 2)},
            "the upload function alone vs direct GridFS write (largest file)": {
                "goal": "(what the emulator's transport leaves out)", "measured": round(alone, 2)},
            "worker peak RSS, MiB": {"goal": f"< {GOAL_RSS_MIB}", "measured": max(peaks)},
            "worker peak RSS spread between sizes": {"goal": f"<= {GOAL_FLAT:.0%}",
                                                     "measured": f"{spread:.1%}" if spread is not None else None},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--sizes-mib", default="100,1024", help="comma-separated file sizes, MiB")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes_mib.split(",")]

    with local_stack() as stack, tempfile.TemporaryDirectory(prefix="vid2mp3-bench-") as work:
        report = bench(stack, sizes, Path(work))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
