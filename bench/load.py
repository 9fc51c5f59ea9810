"""Load on the emulated API: a cold burst on a fresh stack, and warm throughput at 16 concurrent clients.

    .venv/bin/python bench/load.py [--clients 16] [--seconds 10]

Always starts its own stacks (as `make run` does, on free ports; stop a running `make run` first: they
share .vid2mp3/), because a cold start can only be measured on a fresh one:

1. cold, one request: a fresh stack started without its warm pools (LOCAL_WARM_POOL=0), then one
   `GET /videos` (the upload function and the TOKEN authorizer from nothing);
2. cold burst: another fresh stack, started as `make run` starts it, then 16 first requests at once
   (`GET /videos`), all timed; goal: every one answered, none an error, the slowest within 2x the single
   cold request;
3. warm: on that stack, 16 clients for a few seconds each of `GET /videos`, `POST /auth/login` and
   a 4 MiB tus PATCH: requests/s and p50/p95/p99 latency.

Prints one JSON object with every goal beside its measured value (and progress lines to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client import MIB, make_user, request, say  # noqa: E402

GOAL_BURST_RATIO = 2.0
WARM_UP: list[str] = []  # what `make run`'s warm-up said


def fresh_stack(*, warm: bool) -> Any:
    """A stack started as `make run` starts it (with its warm pools, infra/warmup.py), or without any."""
    from infra import procs
    from infra.aws import CREDENTIALS
    from infra.local import LocalRun

    os.environ.update(CREDENTIALS)
    environ = {**os.environ, **({} if warm else {"LOCAL_WARM_POOL": "0"})}
    local = LocalRun(environ=environ, port=procs.free_port())
    # As `make run` starts it, and then (its warm pools start in the background there) once they are up.
    local.start(say=lambda line: WARM_UP.append(line.strip()) if line.strip().startswith("warm:") else None)
    local.warmed.wait()
    return local


def timed(call: Callable[[], tuple[int, dict[str, str], bytes]]) -> tuple[float, int]:
    t0 = time.perf_counter()
    status, _, _ = call()
    return time.perf_counter() - t0, status


def burst(calls: list[Callable[[], tuple[int, dict[str, str], bytes]]]) -> list[tuple[float, int]]:
    """Every call at once (released together), each timed from the common start."""
    results: list[tuple[float, int]] = [(0.0, 0)] * len(calls)
    gate = threading.Barrier(len(calls) + 1)
    start = [0.0]

    def run(i: int) -> None:
        gate.wait()
        try:
            status, _, _ = calls[i]()
        except OSError:
            status = 0
        results[i] = (time.perf_counter() - start[0], status)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    start[0] = time.perf_counter()
    gate.wait()
    for t in threads:
        t.join()
    return results


def warm(name: str, call: Callable[[], tuple[int, dict[str, str], bytes]], ok: set[int], clients: int,
         seconds: float) -> dict[str, Any]:
    """`clients` clients calling as fast as they are answered, for `seconds`; after as long again at the
    same load, discarded, so that every execution environment the load needs is there (warm)."""
    run_clients(call, ok, clients, seconds)
    result = run_clients(call, ok, clients, seconds)
    say(f"  warm {name}: {result}")
    return result


def run_clients(call: Callable[[], tuple[int, dict[str, str], bytes]], ok: set[int], clients: int,
                seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < stop:
            took, status = timed(call)
            with lock:
                latencies.append(took)
                errors[0] += status not in ok
    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {"requests": len(latencies), "errors": errors[0], "per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}

    say("1. a fresh stack without warm pools, one cold request ...")
    local = fresh_stack(warm=False)
    try:
        api = local.api_url
        token, _ = make_user(api)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        cold, status = timed(lambda: request("GET", api + "/videos", headers=headers))
        assert status == 200, status
        say(f"  cold GET /videos: {cold:.2f} s")
    finally:
        local.stop()

    say(f"2. another fresh stack, as `make run` starts it, {args.clients} first requests at once ...")
    local = fresh_stack(warm=True)
    try:
        api = local.api_url
        token, login_body = make_user(api)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        results = burst([lambda: request("GET", api + "/videos", headers=headers)] * args.clients)
        slowest = max(took for took, _ in results)
        failed = sum(status != 200 for _, status in results)
        say(f"  burst: slowest {slowest:.2f} s, median {statistics.median(t for t, _ in results):.2f} s, "
            f"{failed} failed")
        report["cold"] = {"make_run_warm_up": WARM_UP[-1] if WARM_UP else None,
                          "single_s": round(cold, 2), "burst_slowest_s": round(slowest, 2),
                          "burst_median_s": round(statistics.median(t for t, _ in results), 2),
                          "burst_errors": failed}

        say(f"3. warm, {args.clients} clients ...")
        json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
        part = os.urandom(4 * MIB)
        size = 1024 * MIB  # room for every PATCH a client sends in the run, in one upload each

        def patcher() -> Callable[[], tuple[int, dict[str, str], bytes]]:
            # A user each: an unfinished upload counts as an active job, and each user may have ten.
            mine = {**tus, "Authorization": f"Bearer {make_user(api)[0]}"}
            status, got, _ = request("POST", api + "/uploads", headers={**mine, "Upload-Length": str(size)})
            assert status == 201, status
            location, offset = got["Location"], [0]

            def patch() -> tuple[int, dict[str, str], bytes]:
                answer = request("PATCH", location, body=part, headers={
                    **mine, "Upload-Offset": str(offset[0]), "Content-Type": "application/offset+octet-stream"})
                offset[0] += len(part) if answer[0] == 204 else 0
                return answer
            return patch

        warm_results = {
            "GET /videos": warm("GET /videos", lambda: request("GET", api + "/videos", headers=headers), {200},
                                args.clients, args.seconds),
            "POST /auth/login": warm("POST /auth/login", lambda: request(
                "POST", api + "/auth/login", body=login_body, headers=json_headers), {200},
                args.clients, args.seconds),
        }
        patchers = [patcher() for _ in range(args.clients)]
        turn = iter(range(10**9))
        lock = threading.Lock()

        def next_patch() -> tuple[int, dict[str, str], bytes]:
            with lock:
                i = next(turn) % len(patchers)
            return patchers[i]()
        warm_results["PATCH /uploads/{id} (4 MiB)"] = warm("PATCH 4 MiB", next_patch, {204, 423, 409},
                                                          args.clients, args.seconds)
        report["warm"] = warm_results
    finally:
        local.stop()
    report["goals"] = {
        f"cold burst of {args.clients}: slowest vs one cold request": {
            "goal": f"<= {GOAL_BURST_RATIO}, no error",
            "measured": f"{report['cold']['burst_slowest_s'] / report['cold']['single_s']:.2f}, "
                        f"{report['cold']['burst_errors']} errors"},
        **{f"warm, {args.clients} clients: {name}": {
            "goal": "no error; throughput and p50/p95/p99 as measured (the issue's warm baseline: "
                    "GET /videos 260 req/s, p95 66 ms)",
            "measured": f"{r['per_s']} req/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, "
                        f"{r['errors']} errors"}
           for name, r in report.get("warm", {}).items()},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
