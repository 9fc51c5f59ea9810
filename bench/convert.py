"""The convert function against bare ffmpeg, on the same machine and the same files.

    python bench/convert.py [--repeat N] [--skip-concurrency]

Generates (once, cached under .vid2mp3/bench/media/) a 1-minute and a 10-minute 720p H.264/AAC file and a
10-minute MKV with MP3 audio, with the ffmpeg layer's ffmpeg; stores them in GridFS; then reports:

- bare `ffmpeg -i in -vn -c:a libmp3lame -b:a 192k out.mp3` on the local file: wall and CPU time;
- the convert function (functions/convert/app.py, in a fresh worker process, as a warm invocation) on the
  same file from GridFS to the committed MP3 (job done, event confirmed): wall and CPU time (its own and
  its children's: ffmpeg, ffprobe), the ratio to bare ffmpeg, where the time went, and how ffmpeg was fed
  (vid2mp3.convert.source: mp4_audio, pipe or spool). Jobs carry the probe summary the upload function
  records (Job.extra["media"]), made here by the same probe before the measurements;
- peak RSS of the function process and of its ffmpeg for the 1- and the 10-minute file;
- the copy path (MP3 audio in an MKV): the function's wall time and its ffmpeg step, against a raw read
  of the same stored bytes (pymongo's GridFSBucket, every chunk read and dropped) in the same run;
- two conversions at once (two workers, as the bridge runs with MaxConcurrency 2): aggregate realtime factor.

Services: DATABASE_URL / MONGODB_URI / RABBITMQ_URL when set, else the local PostgreSQL and RabbitMQ and an
embedded SecantusDB started here. A scratch database, GridFS database and private queues are removed after.
Each figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / ".vid2mp3" / "bench"
LAYER = ROOT / ".vid2mp3" / "build" / "layers" / "ffmpeg"
APP_PY = ROOT / "functions" / "convert" / "app.py"
ARN = "arn:aws:mq:us-east-1:000000000000:broker:vid2mp3-bench:b-0"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

GOALS = {
    "wall_ratio": 1.05,
    "cpu_ratio": 1.15,
    "rss_spread": 0.10,
    "rss_mib": 100.0,
    "ffmpeg_rss_mib": 70.0,
    "copy_vs_read": 1.5,
    "concurrent_x": 150.0,
}


# --- media --------------------------------------------------------------------------------------------------


def binaries() -> tuple[str, str]:
    from vid2mp3.media.binaries import LAYERS_DIRS_ENV, find_ffmpeg, find_ffprobe

    if not (LAYER / "bin" / "ffmpeg").exists():
        subprocess.run([sys.executable, str(ROOT / "layers" / "ffmpeg" / "build.py")], check=True)
    env = {LAYERS_DIRS_ENV: str(LAYER), "PATH": ""}
    return find_ffmpeg(None, env, opt_dir="/nonexistent"), find_ffprobe(None, env, opt_dir="/nonexistent")


def generate(ffmpeg: str, out: Path, *args: str) -> Path:
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial" + out.suffix)
    print(f"generating {out.name} ...", file=sys.stderr, flush=True)
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(partial)],
                   check=True)
    partial.rename(out)
    return out


# 720p test picture and a stereo tone: the bench files' sources (bench/e2e.py makes one more from them)
SOURCE_720P = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo"]


def bare_argv(ffmpeg: str, source: Path, out: Path) -> list[str]:
    """What the job does, with nothing around it: the baseline every ratio is taken against."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
            "-vn", "-c:a", "libmp3lame", "-b:a", "192k", str(out)]


def media(ffmpeg: str) -> dict[str, Path]:
    d = BENCH_DIR / "media"
    src = SOURCE_720P
    # ~7.5 Mbit/s constant, like a phone's 720p: a 10-minute file is ~570 MB (the brief's size)
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "7500k", "-maxrate", "7500k", "-bufsize", "15M",
            "-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p"]
    files = {
        "1min": generate(ffmpeg, d / "720p-1min.mp4", *src, "-t", "60", *h264, "-c:a", "aac", "-b:a", "128k"),
        "10min": generate(ffmpeg, d / "720p-10min.mp4", *src, "-t", "600", *h264, "-c:a", "aac", "-b:a", "128k"),
    }
    files["10min-mp3.mkv"] = generate(ffmpeg, d / "720p-10min-mp3.mkv", "-i", str(files["10min"]), "-map", "0:v",
                                      "-map", "0:a", "-c:v", "copy", "-c:a", "libmp3lame", "-b:a", "192k")
    return files


# --- services ---------------------------------------------------------------------------------------------


@dataclass
class Services:
    pg_url: str
    mongo_uri: str
    database: str
    rabbitmq_url: str
    completed_queue: str
    failed_queue: str


@contextlib.contextmanager
def services() -> Iterator[Services]:
    import pika
    import psycopg
    import pymongo

    from infra import services as infra_services
    from vid2mp3.db.migrate import apply_migrations
    from vid2mp3.queue import topology

    suffix = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        # PostgreSQL: a scratch database with the migrations
        admin_url = os.environ.get("DATABASE_URL") or PG_ADMIN_URL
        name = f"vid2mp3_bench_{suffix}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

        def drop_pg() -> None:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        stack.callback(drop_pg)
        pg_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        apply_migrations(pg_url)
        # MongoDB: the given one, else an embedded SecantusDB
        mongo_uri = os.environ.get("MONGODB_URI")
        if not mongo_uri:
            storage = BENCH_DIR / "mongodb"
            shutil.rmtree(storage, ignore_errors=True)
            stack.callback(shutil.rmtree, storage, True)  # after the server stopped (callbacks run last-first)
            server = infra_services.start_secantusdb(storage, BENCH_DIR / "mongodb.log")
            stack.callback(server.stop)
            mongo_uri = infra_services.secantus_uri(server.port)
        database = f"vid2mp3_bench_{suffix}"

        def drop_mongo() -> None:
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
            with client:
                client.drop_database(database)

        stack.callback(drop_mongo)
        # RabbitMQ: private event queues
        rabbitmq_url = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"
        queues = [f"{topology.CONVERSION_COMPLETED_QUEUE}.bench-{suffix}",
                  f"{topology.CONVERSION_FAILED_QUEUE}.bench-{suffix}"]

        def drop_queues() -> None:
            conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
            try:
                ch = conn.channel()
                for q in queues:
                    ch.queue_delete(q)
                    ch.queue_delete(topology.dead_letter_queue(q))
            finally:
                conn.close()

        stack.callback(drop_queues)
        yield Services(pg_url, mongo_uri, database, rabbitmq_url, *queues)


# --- memory: VmHWM, not ru_maxrss -------------------------------------------------------------------------
# A child's ru_maxrss includes the image of the process it was forked from (Linux records the old mm's
# high-water mark at exec), so a Python parent's size leaks into its ffmpeg's figure. VmHWM in
# /proc/<pid>/status is the high-water mark of the process's own (post-exec) memory.


def vm_hwm_kib(pid: int | str = "self") -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    if "VmHWM" not in fields:
        return None
    return fields["Name"].strip(), int(fields["VmHWM"].split()[0])


class PeakSampler:
    """Polls the VmHWM of the descendants of `pid` (every 10 ms) and keeps the highest per program name."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self, pid: int) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in task.read_text().split()]
        return found

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            todo = self._children(self.pid)
            while todo:
                child = todo.pop()
                sample = vm_hwm_kib(child)
                if sample is not None:
                    name, kib = sample
                    self.peaks[name] = max(self.peaks.get(name, 0), kib)
                todo += self._children(child)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the worker: one warm invocation of the function in a fresh process -------------------------------------


def _load_app() -> Any:
    spec = importlib.util.spec_from_file_location("convert_app_bench", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(config: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Runs in its own process: bootstrap, warm the connections (a warm invocation), invoke, measure."""
    import vid2mp3.convert.service as service_module
    from vid2mp3.bootstrap import bootstrap_convert
    from vid2mp3.log import get_logger
    from vid2mp3.settings import load_settings

    app = _load_app()
    settings = load_settings({"DATABASE_URL": config["pg_url"], "MONGODB_URI": config["mongo_uri"],
                              "MONGODB_DATABASE": config["database"], "RABBITMQ_URL": config["rabbitmq_url"],
                              "FFMPEG_PATH": config["ffmpeg"], "FFPROBE_PATH": config["ffprobe"],
                              "KEEP_SOURCE": "true"})  # each stored file is converted --repeat times
    converter = bootstrap_convert(settings, work_root=Path(config["work_root"]),
                                  logger=get_logger("convert-bench", "WARNING"))
    converter.completed_queue, converter.failed_queue = config["completed_queue"], config["failed_queue"]
    app._converter = converter
    app.logger.setLevel("WARNING")
    # warm: what a warm Lambda already has (connections open, queues declared)
    converter.store.ping()
    converter.jobs.get(str(uuid.uuid4()))
    converter.publisher.ping()

    steps: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                steps[name] = steps.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    for name, step in (("run_ffmpeg", "ffmpeg"), ("measure_mp3", "verify")):
        setattr(service_module, name, timed(step, getattr(service_module, name)))
    for method, step in (("_choose_input", "inspect"), ("_spool", "spool"), ("_probe", "probe"),
                         ("_store", "store")):
        setattr(converter, method, timed(step, getattr(converter, method)))
    modes: list[str] = []
    choose = converter._choose_input

    def choose_and_record(job: Any) -> Any:
        choice = choose(job)
        modes.append(str(choice.mode))
        return choice

    converter._choose_input = choose_and_record  # type: ignore[method-assign]

    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at, t0 = time.time(), time.perf_counter()
    outcome = app.handler(event, None)
    wall = time.perf_counter() - t0
    ended_at = time.time()
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "outcome": outcome,
        "wall_s": wall,
        "started_at": started_at,
        "ended_at": ended_at,
        "cpu_self_s": (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime),
        "cpu_children_s": (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime),
        "rss_kib": (vm_hwm_kib() or ("", 0))[1],
        "steps": steps,
        # the mode chosen, then "spool" too when a streamed conversion fell back to the spool
        "input": "+".join(modes + (["spool"] if "spool" in steps and modes != ["spool"] else [])),
    }


# --- the runs -----------------------------------------------------------------------------------------------


def bare_ffmpeg(ffmpeg: str, source: Path, out: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    with PeakSampler() as sampler:
        proc = subprocess.Popen(bare_argv(ffmpeg, source, out))
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bare ffmpeg failed on {source}")
    out.unlink()
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": float(sampler.peaks.get("ffmpeg", 0))}


def bare_concurrent_x(ffmpeg: str, source: Path, audio_s: float, n: int = 2) -> float:
    """n bare ffmpeg runs at once: the aggregate realtime factor this machine allows."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(bare_argv(ffmpeg, source, BENCH_DIR / f"bare-{i}.mp3")) for i in range(n)]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"bare ffmpeg failed on {source}")
    wall = time.perf_counter() - t0
    for i in range(n):
        (BENCH_DIR / f"bare-{i}.mp3").unlink()
    return n * audio_s / wall


class Bench:
    def __init__(self, svc: Services, ffmpeg: str, ffprobe: str) -> None:
        from vid2mp3.db.postgres import Postgres
        from vid2mp3.jobs.postgres import PostgresJobRepository
        from vid2mp3.objectstore.gridfs import GridFSStore

        self.svc, self.ffmpeg, self.ffprobe = svc, ffmpeg, ffprobe
        self.db = Postgres(svc.pg_url)
        self.jobs = PostgresJobRepository(self.db)
        self.store = GridFSStore(svc.mongo_uri, svc.database)
        self.videos: dict[Path, str] = {}
        self.summaries: dict[Path, dict[str, Any]] = {}
        self.work_root = BENCH_DIR / "tmp"
        self.work_root.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.db.close()
        self.store.close()

    def video_id(self, path: Path) -> str:
        from vid2mp3.objectstore import VIDEOS_BUCKET

        if path not in self.videos:
            vid = f"bench-{uuid.uuid4().hex}"
            with open(path, "rb") as f:
                self.store.put(VIDEOS_BUCKET, vid, f, filename=path.name, metadata={})
            self.videos[path] = vid
        return self.videos[path]

    def summary(self, path: Path) -> dict[str, Any]:
        """What the upload function keeps with the job: its probe of the file (the same probe)."""
        from vid2mp3.media.probe import probe

        if path not in self.summaries:
            self.summaries[path] = probe(path, ffprobe=self.ffprobe, max_duration_s=3 * 3600).summary()
        return self.summaries[path]

    def event_for_new_job(self, path: Path) -> tuple[str, dict[str, Any]]:
        import pika

        from infra.bridge import Message, build_rmq_event
        from vid2mp3.jobs import Job, conversion_message

        now = datetime.now(UTC)
        media = self.summary(path)
        job = Job(id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), owner_email="bench@example.com",
                  filename=path.name, content_type="video/mp4", size=path.stat().st_size, sha256="0" * 64,
                  video_id=self.video_id(path), bitrate="192k", correlation_id=f"bench-{uuid.uuid4().hex}",
                  created_at=now, updated_at=now, duration_s=media["duration_s"], extra={"media": media})
        self.jobs.create(job)
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     headers={"x-delivery-count": 0}, correlation_id=job.correlation_id)
        event = build_rmq_event(ARN, "video_conversion_queue", "/",
                                [Message(json.dumps(conversion_message(job)).encode(), props, False, 1)])
        return job.id, event

    def config(self) -> dict[str, Any]:
        return {**self.svc.__dict__, "ffmpeg": self.ffmpeg, "ffprobe": self.ffprobe,
                "work_root": str(self.work_root)}

    def start_worker(self, path: Path) -> tuple[str, subprocess.Popen[str], PeakSampler]:
        job_id, event = self.event_for_new_job(path)
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(self.config()),
                                 json.dumps(event)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        return job_id, proc, PeakSampler(proc.pid).__enter__()

    def finish_worker(self, job_id: str, proc: subprocess.Popen[str], sampler: PeakSampler) -> dict[str, Any]:
        out, _ = proc.communicate(timeout=900)
        sampler.__exit__()
        if proc.returncode != 0:
            raise RuntimeError(f"the worker failed (exit {proc.returncode})")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["children_rss_kib"] = sampler.peaks.get("ffmpeg", 0)
        result["ffprobe_rss_kib"] = sampler.peaks.get("ffprobe", 0)
        job = self.jobs.get(job_id)
        if result["outcome"] != {"done": 1} or job is None or job.status != "done" or job.mp3 is None:
            raise RuntimeError(f"the conversion did not complete: {result['outcome']}, {job}")
        result["mp3_duration_s"] = job.mp3.duration_s
        return result

    def raw_read_s(self, path: Path) -> float:
        """The stored file read whole, as fast as the reference GridFS client reads it."""
        import gridfs
        import pymongo

        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(self.svc.mongo_uri)
        with client:
            bucket = gridfs.GridFSBucket(client[self.svc.database], bucket_name="videos")
            t0 = time.perf_counter()
            with bucket.open_download_stream(self.video_id(path)) as stream:
                while stream.readchunk():
                    pass
            return time.perf_counter() - t0

    def function(self, path: Path) -> dict[str, Any]:
        return self.finish_worker(*self.start_worker(path))

    def concurrent(self, path: Path, n: int = 2) -> dict[str, Any]:
        started = [self.start_worker(path) for _ in range(n)]
        results = [self.finish_worker(*worker) for worker in started]
        wall = max(r["ended_at"] for r in results) - min(r["started_at"] for r in results)
        audio = sum(r["mp3_duration_s"] for r in results)
        return {"wall_s": wall, "audio_s": audio, "realtime_x": audio / wall}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def median_step(runs: list[dict[str, Any]], step: str) -> float:
    return float(statistics.median(r["steps"].get(step, 0.0) for r in runs))


def inputs(runs: list[dict[str, Any]]) -> str:
    """How ffmpeg was fed in these runs (the distinct modes)."""
    return ", ".join(sorted({str(r.get("input", "?")) for r in runs}))


def mib(kib: float) -> float:
    return kib / 1024


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "EVENT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker[0]), json.loads(args.worker[1]))), flush=True)
        return 0

    ffmpeg, ffprobe = binaries()
    files = media(ffmpeg)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, ffmpeg: {ffmpeg}", flush=True)
    with services() as svc:
        bench = Bench(svc, ffmpeg, ffprobe)
        try:
            for path in files.values():
                bench.video_id(path)  # stored once, outside the measurements
                bench.summary(path)
            rows: dict[str, dict[str, Any]] = {}
            for label in ("1min", "10min"):
                path = files[label]
                bare, func = [], []
                for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits both alike
                    bare.append(bare_ffmpeg(ffmpeg, path, BENCH_DIR / "bare.mp3"))
                    func.append(bench.function(path))
                rows[label] = {"bare": bare, "func": func}
            copy_runs, raw_reads = [], []
            for _ in range(args.repeat):  # interleaved too
                raw_reads.append(bench.raw_read_s(files["10min-mp3.mkv"]))
                copy_runs.append(bench.function(files["10min-mp3.mkv"]))
            conc, bare_conc = [], []
            for _ in range(0 if args.skip_concurrency else args.repeat):
                bare_conc.append(bare_concurrent_x(ffmpeg, files["10min"], 600.0))
                conc.append(bench.concurrent(files["10min"]))
        finally:
            bench.close()

    print()
    print(f"{'file':<8}{'bare wall':>10}{'bare cpu':>10}{'fn wall':>10}{'fn cpu':>10}{'wall x':>8}{'cpu x':>8}"
          f"{'fn RSS':>10}{'ffmpeg RSS':>12}{'bare RSS':>10}")
    for label, row in rows.items():
        bw, bc = median(row["bare"], "wall_s"), median(row["bare"], "cpu_s")
        fw = median(row["func"], "wall_s")
        fc = float(statistics.median(r["cpu_self_s"] + r["cpu_children_s"] for r in row["func"]))
        row["summary"] = {"bw": bw, "bc": bc, "fw": fw, "fc": fc, "rss": median(row["func"], "rss_kib"),
                          "frss": median(row["func"], "children_rss_kib")}
        s = row["summary"]
        print(f"{label:<8}{bw:>9.2f}s{bc:>9.2f}s{fw:>9.2f}s{fc:>9.2f}s{fw / bw:>8.2f}{fc / bc:>8.2f}"
              f"{mib(s['rss']):>7.1f}MiB{mib(s['frss']):>9.1f}MiB{mib(median(row['bare'], 'rss_kib')):>7.1f}MiB")
    print()
    print("where the function's time went (median s; ffmpeg includes the streamed read of GridFS):")
    for label, row in rows.items():
        parts = ", ".join(f"{step} {median_step(row['func'], step):.2f}"
                          for step in ("inspect", "spool", "probe", "ffmpeg", "verify", "store"))
        cpu_self = median(row["func"], "cpu_self_s")
        print(f"  {label} [{inputs(row['func'])}]: {parts}; function process CPU {cpu_self:.2f} s, children CPU "
              f"{median(row['func'], 'cpu_children_s'):.2f} s")
    copy_wall, copy_ff = median(copy_runs, "wall_s"), median_step(copy_runs, "ffmpeg")
    raw_read = float(statistics.median(raw_reads))
    print(f"\ncopy path, 10-min MKV with MP3 audio [{inputs(copy_runs)}]: function {copy_wall:.2f} s "
          f"(spool {median_step(copy_runs, 'spool'):.2f}, ffmpeg -c:a copy {copy_ff:.2f}, "
          f"verify {median_step(copy_runs, 'verify'):.2f}); a raw GridFS read of the same "
          f"{files['10min-mp3.mkv'].stat().st_size / 2**20:.0f} MiB: {raw_read:.2f} s")
    if conc:
        rt = float(statistics.median(c["realtime_x"] for c in conc))
        bare_rt = float(statistics.median(bare_conc))
        print(f"2 concurrent 10-min conversions: {statistics.median(c['wall_s'] for c in conc):.2f} s wall, "
              f"{rt:.0f}x realtime aggregate (2 bare ffmpeg at once on this machine: {bare_rt:.0f}x)")

    ten, one = rows["10min"]["summary"], rows["1min"]["summary"]
    spread = abs(ten["rss"] - one["rss"]) / one["rss"]
    print("\ngoals:")
    print(f"  wall ratio {ten['fw'] / ten['bw']:.2f} <= {GOALS['wall_ratio']}: "
          f"{verdict(ten['fw'] / ten['bw'] <= GOALS['wall_ratio'])}")
    print(f"  CPU ratio {ten['fc'] / ten['bc']:.2f} <= {GOALS['cpu_ratio']}: "
          f"{verdict(ten['fc'] / ten['bc'] <= GOALS['cpu_ratio'])}")
    print(f"  function RSS {mib(one['rss']):.1f} / {mib(ten['rss']):.1f} MiB, spread {spread:.1%} "
          f"<= {GOALS['rss_spread']:.0%} and < {GOALS['rss_mib']:.0f} MiB: "
          f"{verdict(spread <= GOALS['rss_spread'] and mib(max(one['rss'], ten['rss'])) < GOALS['rss_mib'])}")
    print(f"  ffmpeg RSS {mib(max(one['frss'], ten['frss'])):.1f} MiB < {GOALS['ffmpeg_rss_mib']:.0f} MiB: "
          f"{verdict(mib(max(one['frss'], ten['frss'])) < GOALS['ffmpeg_rss_mib'])}")
    print(f"  copy path {copy_wall:.2f} s vs raw GridFS read {raw_read:.2f} s: {copy_wall / raw_read:.2f}x "
          f"<= {GOALS['copy_vs_read']}x: {verdict(copy_wall / raw_read <= GOALS['copy_vs_read'])}")
    if conc:
        print(f"  2 concurrent {rt:.0f}x >= {GOALS['concurrent_x']:.0f}x: {verdict(rt >= GOALS['concurrent_x'])} "
              f"({rt / bare_rt:.2f} of 2 bare ffmpeg at once, {bare_rt:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
