"""End to end, as a client sees it: upload, conversion and the MP3 through the deployed local stack, against
bare ffmpeg on the same files in the same run, and where the time went.

    .venv/bin/python bench/e2e.py [--repeat N] [--files 1min,10min]

Uses the running local stack (`make run`) when there is one, else starts one as `make run` does (its warm
pools up first) and stops it afterwards. Files (made once by the ffmpeg layer's ffmpeg, cached under
.vid2mp3/bench/media/, shared with bench/convert.py): a 1-minute and a 10-minute 720p H.264/AAC file at
7.5 Mbit/s (57 and 570 MB), and a 1-minute 720p file at 300 kbit/s that fits in one request (3 MB).

- tus: tuspy (a standard tus client) in 4 MiB parts, every file; multipart `POST /videos`: the file that
  fits in one request (the API refuses a body over 4 MiB, as API Gateway and Lambda would);
- bare ffmpeg: `ffmpeg -i in -vn -c:a libmp3lame -b:a 192k out.mp3` on the local file (what the job does);
- times as the client sees them: upload start, accepted (the 202, or the last PATCH's answer that names
  the job), done (the first `GET /videos/{id}` that says so; polled every 50 ms);
- where the time went, from the job's row (created, published, started, finished, event published) and
  the convert function's log lines (converting, converted with ffmpeg's wall time and how long its
  input waited on the store, job done): upload, publish, queue wait + bridge + invoke, convert set-up
  (lock, job row, input choice), ffmpeg (of which waiting on store reads), MP3 check, MP3 store write +
  job row, the event, and the client's poll.

Goals (the 10-minute file, tus): accepted -> done <= 1.10x bare ffmpeg; upload start -> done <= 1.25x.
Prints one JSON object with every goal beside its measured value (and progress lines to stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client import MIB, function_log, local_stack, make_user, request, say  # noqa: E402
from bench.convert import BENCH_DIR, SOURCE_720P, bare_ffmpeg, binaries, generate, media  # noqa: E402

PART = 4 * MIB
POLL_S = 0.05
GOAL_ACCEPTED = 1.10
GOAL_UPLOAD = 1.25


def files(ffmpeg: str, wanted: list[str]) -> dict[str, Path]:
    made = media(ffmpeg)
    small = generate(ffmpeg, BENCH_DIR / "media" / "720p-1min-300k.mp4", *SOURCE_720P, "-t", "60",
                     "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "300k", "-pix_fmt", "yuv420p",
                     "-c:a", "aac", "-b:a", "128k")
    return {"1min-small": small, **{name: made[name] for name in wanted}}


def bare_ffmpeg_s(ffmpeg: str, source: Path, repeat: int) -> float:
    with tempfile.TemporaryDirectory(prefix="vid2mp3-bench-") as work:
        return statistics.median(bare_ffmpeg(ffmpeg, source, Path(work) / "out.mp3")["wall_s"]
                                 for _ in range(repeat))


# --- one job, as a client runs it ------------------------------------------------------------------


def upload_tus(api: str, token: str, path: Path) -> tuple[str, float]:
    """The job's id and the wall clock (time.time()) of the answer that named it."""
    from tusclient import client

    tus = client.TusClient(f"{api}/uploads", headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(str(path), chunk_size=PART, metadata={"filename": path.name})
    uploader.set_url(uploader.create_url())
    uploader.offset = 0
    size = path.stat().st_size
    while uploader.offset < size:
        uploader.upload_chunk()  # type: ignore[no-untyped-call]
    accepted = time.time()
    job = uploader.request.response_headers.get("vid2mp3-job", "") if uploader.request else ""
    if not job:
        raise SystemExit(f"the last PATCH of {path.name} named no job")
    return job.rsplit("/", 1)[-1], accepted


def upload_multipart(api: str, token: str, path: Path) -> tuple[str, float]:
    boundary = "vid2mp3-bench-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, raw = request("POST", f"{api}/videos", body=body, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json",
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    if status != 202:
        raise SystemExit(f"POST /videos of {path.name}: {status} {raw[:300]!r}")
    return str(json.loads(raw)["id"]), time.time()


def wait_done(api: str, token: str, job_id: str) -> float:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        status, _, raw = request("GET", f"{api}/videos/{job_id}", headers=headers)
        job = json.loads(raw) if status == 200 else {}
        if job.get("status") == "done":
            return time.time()
        if job.get("status") == "failed" or status != 200:
            raise SystemExit(f"job {job_id}: {status} {raw[:300]!r}")
        time.sleep(POLL_S)
    raise SystemExit(f"job {job_id} not done in 30 minutes")


# --- where the time went ---------------------------------------------------------------------------


def job_row(database_url: str, job_id: str) -> dict[str, float]:
    """The job's timestamps (epoch seconds), once its event is published."""
    import psycopg

    columns = ("created_at", "published_at", "started_at", "finished_at", "event_published_at")
    with psycopg.connect(database_url) as conn:
        for _ in range(100):
            row = conn.execute(f"SELECT {', '.join(columns)} FROM jobs WHERE id = %s",
                               (job_id,)).fetchone()
            if row is not None and row[-1] is not None:
                return {c: v.timestamp() for c, v in zip(columns, row, strict=True) if v is not None}
            time.sleep(0.1)
    raise SystemExit(f"job {job_id}: its event was not published")


LOG_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)[,.](\d+)(.*)")


def log_time(stamp: str) -> float:
    """Powertools' "2026-11-30 10:12:13,123+0000" as epoch seconds."""
    m = LOG_TIME.match(stamp)
    if m is None:
        raise ValueError(stamp)
    zone = m[4].replace(":", "") or "+0000"
    return datetime.strptime(f"{m[1]} {m[2]}.{m[3][:6]}{zone}", "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def convert_log(stack: dict[str, Any], job_id: str) -> dict[str, dict[str, Any]]:
    """The convert function's "converting", "converted" and "job done" lines of this job, by message."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(50):
        for line in function_log(stack, "ConvertFunction"):
            if job_id not in line:
                continue
            with_json = line[line.find("{"):]
            try:
                record = json.loads(with_json)
            except ValueError:
                continue
            if record.get("job_id") == job_id and record.get("message") in ("converting", "converted", "job done"):
                found[record["message"]] = record
        if len(found) == 3:
            return found
        time.sleep(0.2)
    raise SystemExit(f"job {job_id}: the convert function's log lines were not found ({sorted(found)})")


def phases(start: float, accepted: float, seen: float, row: dict[str, float],
           log: dict[str, dict[str, Any]]) -> dict[str, float]:
    converting = log_time(log["converting"]["timestamp"])
    converted = log_time(log["converted"]["timestamp"])
    job_done = log_time(log["job done"]["timestamp"])
    ffmpeg_s = float(log["converted"]["elapsed_s"])
    read_wait_s = float(log["converted"].get("input_wait_s") or 0.0)
    spans = {
        "upload": accepted - start,
        "job message published": row["published_at"] - row["created_at"],
        "queue wait, bridge and invoke": row["started_at"] - row["published_at"],
        "convert set-up (lock, job row, input choice)": converting - row["started_at"],
        "ffmpeg (store reads overlapped)": ffmpeg_s,
        "  of which ffmpeg's input waited on store reads": read_wait_s,
        "MP3 check": converted - converting - ffmpeg_s,
        "MP3 store write and job row": job_done - converted,
        "source removal and event": row["event_published_at"] - job_done,
        "until the client saw it (poll)": seen - row["finished_at"],
    }
    return {k: round(max(v, 0.0), 2) for k, v in spans.items()}


def one_job(stack: dict[str, Any], token: str, path: Path, method: str) -> dict[str, Any]:
    api = stack["api_url"].rstrip("/")
    start = time.time()
    job_id, accepted = (upload_tus if method == "tus" else upload_multipart)(api, token, path)
    seen = wait_done(api, token, job_id)
    row = job_row(stack["parameters"]["DatabaseUrl"], job_id)
    log = convert_log(stack, job_id)
    request("DELETE", f"{api}/videos/{job_id}", headers={"Authorization": f"Bearer {token}"})
    return {"upload_start_to_done_s": seen - start, "accepted_to_done_s": seen - accepted,
            "phases_s": phases(start, accepted, seen, row, log)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="jobs per file and method (the median counts)")
    parser.add_argument("--files", default="1min,10min", help="which of 1min,10min (the small file always runs)")
    args = parser.parse_args(argv)
    ffmpeg, _ = binaries()
    sources = files(ffmpeg, [f for f in args.files.split(",") if f])
    report: dict[str, Any] = {"files": {}}
    with local_stack() as stack:
        token, _ = make_user(stack["api_url"].rstrip("/"))
        for name, path in sources.items():
            bare = bare_ffmpeg_s(ffmpeg, path, max(args.repeat, 3))
            say(f"{path.name} ({path.stat().st_size / MIB:.0f} MiB): bare ffmpeg {bare:.2f} s")
            entry: dict[str, Any] = {"bytes": path.stat().st_size, "bare_ffmpeg_s": round(bare, 2)}
            methods = ["tus"] + (["multipart"] if path.stat().st_size <= 4 * MIB - 1024 else [])
            for method in methods:
                runs = [one_job(stack, token, path, method) for _ in range(args.repeat)]
                upload_done = statistics.median(r["upload_start_to_done_s"] for r in runs)
                accepted_done = statistics.median(r["accepted_to_done_s"] for r in runs)
                middle = sorted(runs, key=lambda r: r["upload_start_to_done_s"])[len(runs) // 2]
                entry[method] = {
                    "upload_start_to_done_s": round(upload_done, 2),
                    "upload_start_to_done_vs_bare": round(upload_done / bare, 2),
                    "accepted_to_done_s": round(accepted_done, 2),
                    "accepted_to_done_vs_bare": round(accepted_done / bare, 2),
                    "where_the_time_went_s": middle["phases_s"],
                }
                say(f"  {method}: upload start -> done {upload_done:.2f} s ({upload_done / bare:.2f}x), "
                    f"accepted -> done {accepted_done:.2f} s ({accepted_done / bare:.2f}x)")
                say("    " + ", ".join(f"{k.strip()} {v}" for k, v in middle["phases_s"].items()))
            report["files"][name] = entry
    ten = report["files"].get("10min", {}).get("tus")
    if ten is not None:
        report["goals"] = {
            "10-minute file, accepted -> done vs bare ffmpeg": {
                "goal": f"<= {GOAL_ACCEPTED}", "measured": ten["accepted_to_done_vs_bare"]},
            "10-minute file, upload start -> done vs bare ffmpeg": {
                "goal": f"<= {GOAL_UPLOAD}", "measured": ten["upload_start_to_done_vs_bare"]},
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
