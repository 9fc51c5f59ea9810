"""Upload throughput and the upload function's peak memory, for a 50 MiB video through the emulated API.

    .venv/bin/python bench/upload.py [--size-mib 50] [--runs 3] [--api-url URL]

Uses the running local stack (`make run`) when there is one, else starts one as `make run` does and
stops it afterwards. A fresh user registers and logs in; a WAV of the requested size is generated
with the ffmpeg layer's ffmpeg (a real media file, so the upload goes all the way: multipart parse,
ffprobe, GridFS, PostgreSQL, RabbitMQ); each run POSTs it to /videos and times the request.

Peak RSS is read from the worker process MiniStack runs the upload function in (the process whose
working directory is under .vid2mp3/emulator/tmp-<port> and names UploadFunction): its VmHWM is reset
before each run (/proc/<pid>/clear_refs, "5") and read after it, and VmRSS is sampled meanwhile.
The numbers include the emulator's own share of the work (the event, with the body base64-encoded,
is built by MiniStack and handed to the worker): the worker's peak is what Lambda would bill as
"Max Memory Used".

Prints one JSON object (and a line of text per run to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATE = ROOT / ".vid2mp3"
LAYER = STATE / "build" / "layers" / "ffmpeg"
WORKERS = STATE / "emulator" / "tmp-"  # + the emulator port
PASSWORD = "bench password, long enough"
MIB = 1024 * 1024


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def request(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 600) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def running_api_url() -> str | None:
    runtime = STATE / "runtime.json"
    if not runtime.exists():
        return None
    url = str(json.loads(runtime.read_text())["api_url"])
    try:
        status, _, _ = request("GET", url + "/health", timeout=10)
    except OSError:
        return None
    return url if status == 200 else None


def make_user(api: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    creds = json.dumps({"email": email, "password": PASSWORD}).encode()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    status, _, raw = request("POST", api + "/auth/register", body=creds, headers=json_headers)
    if status != 201:
        raise SystemExit(f"register failed: {status} {raw[:300]!r}")
    status, _, raw = request("POST", api + "/auth/login", body=creds, headers=json_headers)
    if status != 200:
        raise SystemExit(f"login failed: {status} {raw[:300]!r}")
    return str(json.loads(raw)["access_token"])


def make_wav(path: Path, size_bytes: int) -> Path:
    from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg

    ffmpeg = find_ffmpeg(None, {LAYERS_DIRS_ENV: str(LAYER), "PATH": os.environ.get("PATH", "")})
    seconds = (size_bytes - 44) / (44100 * 2 * 2)  # 16-bit stereo PCM at 44.1 kHz
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-ac", "2", "-t", f"{seconds:.6f}",
                    "-c:a", "pcm_s16le", str(path)], check=True, timeout=300)
    return path


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = "bench" + uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- the worker process -----------------------------------------------------------------------------


def upload_workers() -> list[int]:
    """Live processes whose cwd is an UploadFunction worker directory of the emulator."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(WORKERS)) and "UploadFunction" in cwd:
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


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """Polls VmRSS of every upload worker while a run is in flight."""

    def __init__(self, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.peak_rss_kib: dict[int, int] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for pid in upload_workers():
                self.peak_rss_kib[pid] = max(self.peak_rss_kib.get(pid, 0), status_kib(pid, "VmRSS"))
            time.sleep(self.interval_s)




# --- main ------------------------------------------------------------------------------------------


def bench(api: str, size_mib: float, runs: int, work: Path) -> dict[str, Any]:
    token = make_user(api)
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    wav = make_wav(work / "bench.wav", int(size_mib * MIB))
    body, ctype = multipart(wav)
    size = wav.stat().st_size
    say(f"file: {wav.name}, {size / MIB:.1f} MiB; request body {len(body) / MIB:.1f} MiB")

    status, _, _ = request("GET", api + "/videos", headers=auth)  # a warm worker before measuring
    assert status == 200, status
    results: list[dict[str, Any]] = []
    job_ids = []
    for i in range(runs):
        workers = upload_workers()
        baseline = {pid: status_kib(pid, "VmRSS") for pid in workers}
        resettable = all(reset_peak(pid) for pid in workers)
        sampler = Sampler()
        sampler.start()
        t0 = time.perf_counter()
        status, _, raw = request("POST", api + "/videos", body=body, headers={**auth, "Content-Type": ctype})
        elapsed = time.perf_counter() - t0
        sampler.stop_flag.set()
        sampler.join()
        if status != 202:
            raise SystemExit(f"upload {i + 1} failed: {status} {raw[:500]!r}")
        job_ids.append(json.loads(raw)["id"])
        pids = sorted(set(workers) | set(sampler.peak_rss_kib))
        hwm = {pid: status_kib(pid, "VmHWM") for pid in pids}
        worker = max(pids, key=lambda p: max(hwm.get(p, 0), sampler.peak_rss_kib.get(p, 0))) if pids else None
        run: dict[str, Any] = {
            "seconds": round(elapsed, 3),
            "mb_per_s": round(size / 1e6 / elapsed, 1),
            "mib_per_s": round(size / MIB / elapsed, 1),
            "worker_pid": worker,
            "worker_rss_before_mib": round(baseline.get(worker, 0) / 1024, 1) if worker else None,
            "worker_peak_rss_mib": round(max(hwm.get(worker, 0), sampler.peak_rss_kib.get(worker, 0)) / 1024, 1)
            if worker else None,
            "peak_is_vmhwm_since_reset": resettable,
        }
        results.append(run)
        say(f"run {i + 1}: {run['seconds']} s, {run['mib_per_s']} MiB/s, worker {worker} peak RSS "
            f"{run['worker_peak_rss_mib']} MiB (before {run['worker_rss_before_mib']} MiB)")
    for job_id in job_ids:
        request("DELETE", f"{api}/videos/{job_id}", headers=auth)
    peaks = [r["worker_peak_rss_mib"] for r in results if r["worker_peak_rss_mib"] is not None]
    return {
        "file_bytes": size,
        "body_bytes": len(body),
        "runs": results,
        "median_seconds": statistics.median(r["seconds"] for r in results),
        "median_mib_per_s": statistics.median(r["mib_per_s"] for r in results),
        "max_worker_peak_rss_mib": max(peaks) if peaks else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-url", help="the stage URL (default: the running `make run`, else start one)")
    args = parser.parse_args(argv)

    import tempfile

    local = None
    api = args.api_url or running_api_url()
    if api is None:
        from infra import procs
        from infra.aws import CREDENTIALS
        from infra.local import LocalRun

        os.environ.update(CREDENTIALS)
        local = LocalRun(environ=dict(os.environ), port=procs.free_port())
        say("starting the local stack ...")
        api = local.start(say=say)
    try:
        with tempfile.TemporaryDirectory(prefix="vid2mp3-bench-") as work:
            report = bench(api.rstrip("/"), args.size_mib, args.runs, Path(work))
    finally:
        if local is not None:
            local.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
