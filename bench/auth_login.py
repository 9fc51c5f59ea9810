"""Login latency through the deployed API (median, p95), and argon2id's cost per hash on this machine.

    python bench/auth_login.py [STAGE_URL] [--logins N] [--failed N] [--hashes N]

The stage URL defaults to the one the local run wrote (.vid2mp3/api-url, else .vid2mp3/runtime.json).
Without one, only the argon2id rows are measured. Failed logins are measured in a few rounds only,
below the throttling threshold; each request carries its own X-Forwarded-For, which the local emulator
takes as the source IP (API Gateway on AWS does not), so the per-IP counter is not filled either.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from vid2mp3.auth.passwords import MEMORY_COST_KIB, PARALLELISM, TIME_COST, Argon2PasswordHasher

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / ".vid2mp3"
PASSWORD = "bench password, long enough"


def find_api_url(given: str | None) -> str | None:
    if given:
        return given.rstrip("/")
    plain = STATE_DIR / "api-url"
    if plain.is_file() and plain.read_text().strip():
        return plain.read_text().strip().rstrip("/")
    runtime = STATE_DIR / "runtime.json"
    if runtime.is_file():
        url = json.loads(runtime.read_text()).get("api_url")
        return str(url).rstrip("/") if url else None
    return None


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def timed(action: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def post(url: str, body: dict[str, str]) -> int:
    source_ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Forwarded-For": source_ip},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            exc.read()
            return int(exc.code)


def expect(status: int, *wanted: int) -> None:
    if status not in wanted:
        raise RuntimeError(f"unexpected HTTP status {status} (expected {' or '.join(map(str, wanted))})")


def bench_api(api_url: str, logins: int, failed: int, warmup: int) -> list[tuple[str, list[float]]]:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    expect(post(f"{api_url}/auth/register", {"email": email, "password": PASSWORD}), 201)
    good = {"email": email, "password": PASSWORD}
    login_url = f"{api_url}/auth/login"
    for _ in range(warmup):  # cold start of the function, first connections
        expect(post(login_url, good), 200)
    rows = [("POST /auth/login -> 200", timed(lambda: expect(post(login_url, good), 200), logins))]

    wrong: list[float] = []
    while len(wrong) < failed:  # rounds of at most 4, each closed by a success that resets the account
        batch = min(4, failed - len(wrong))
        wrong += timed(lambda: expect(post(login_url, {**good, "password": "wrong password"}), 401), batch)
        expect(post(login_url, good), 200)
    unknown = timed(
        lambda: expect(
            post(login_url, {"email": f"nobody-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}),
            401,
        ),
        failed,
    )
    if failed:
        rows += [
            ("POST /auth/login -> 401, wrong password", wrong),
            ("POST /auth/login -> 401, unknown email", unknown),
        ]
    return rows


def bench_argon2(hashes: int) -> list[tuple[str, list[float]]]:
    hasher = Argon2PasswordHasher()
    stored = hasher.hash(PASSWORD)
    params = f"m={MEMORY_COST_KIB // 1024} MiB, t={TIME_COST}, p={PARALLELISM}"
    return [
        (f"argon2id hash ({params})", timed(lambda: hasher.hash(PASSWORD), hashes)),
        (f"argon2id verify ({params})", timed(lambda: hasher.verify(stored, PASSWORD), hashes)),
    ]


def print_table(rows: list[tuple[str, list[float]]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  {'n':>4}  {'median ms':>10}  {'p95 ms':>8}  {'max ms':>8}")
    for name, samples in rows:
        print(
            f"{name:<{width}}  {len(samples):>4}  {statistics.median(samples):>10.1f}"
            f"  {percentile(samples, 95):>8.1f}  {max(samples):>8.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("api_url", nargs="?", help="the stage URL (default: from .vid2mp3/)")
    parser.add_argument("--logins", type=int, default=50, help="successful logins to time (default 50)")
    parser.add_argument(
        "--failed", type=int, default=8, help="failed logins of each kind to time (default 8)"
    )
    parser.add_argument("--hashes", type=int, default=20, help="argon2id hashes to time (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed logins first (default 3)")
    args = parser.parse_args(argv)

    rows = bench_argon2(args.hashes)
    api_url = find_api_url(args.api_url)
    if api_url is None:
        print("no stage URL given or found in .vid2mp3/: measuring argon2id only", file=sys.stderr)
    else:
        try:
            rows += bench_api(api_url, args.logins, args.failed, args.warmup)
        except (OSError, RuntimeError) as exc:
            print_table(rows)
            print(f"the API at {api_url} did not answer as expected: {exc}", file=sys.stderr)
            return 1
        print(f"API: {api_url}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
