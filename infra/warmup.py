"""Warm pools for the local run: execution environments started before the first request, not during it.

The emulator starts one execution environment per concurrent invocation, as Lambda does, but all of
them on this machine's few cores: 16 requests at once on a fresh stack meant 16 cold starts competing for
two cores (over a minute). Right after a deploy, `make run` therefore invokes each function with the
warm-up event (vid2mp3.warmup) as many times at once as its pool declares, so that many environments are
ready and the emulator keeps them (its idle-environment TTL is raised to a day).

A function's pool is its template metadata `WarmPool` (the HTTP functions: what a page, or a client with
several uploads, sends at once), else its bridge concurrency for queue-triggered functions, else none.
`LOCAL_WARM_POOL` caps every pool (0: no warm-up; the e2e tier uses 1).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from infra.template_model import functions, mq_event_sources
from vid2mp3.warmup import WARM_UP_EVENT

WARM_POOL_KEY = "WarmPool"


def warm_pools(template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None,
               cap: int | None = None) -> dict[str, int]:
    """Logical id -> how many execution environments to start."""
    queue_concurrency: dict[str, int] = {}
    for source in mq_event_sources(dict(template), dict(parameters or {})):
        queue_concurrency[source.function] = max(queue_concurrency.get(source.function, 0), source.concurrency)
    pools: dict[str, int] = {}
    for logical_id, resource in functions(dict(template)).items():
        declared = (resource.get("Metadata") or {}).get(WARM_POOL_KEY)
        n = int(declared) if declared is not None else queue_concurrency.get(logical_id, 0)
        if cap is not None:
            n = min(n, cap)
        if n > 0:
            pools[logical_id] = n
    return pools


def warm_up(lambda_client: Any, pools: Mapping[str, tuple[str, int]], *, timeout_s: float = 300) -> float:
    """Invoke each function (logical id -> (physical name, n)) n times at once with the warm-up event;
    returns the seconds it took. All invocations start together, so that none finds a free environment
    another one has just made. Raises RuntimeError naming a function whose warm-up failed."""
    calls = [(logical_id, name) for logical_id, (name, n) in pools.items() for _ in range(n)]
    if not calls:
        return 0.0
    gate = threading.Barrier(len(calls))
    failures: list[str] = []
    payload = json.dumps(WARM_UP_EVENT).encode()

    def invoke(logical_id: str, name: str) -> None:
        gate.wait(timeout=timeout_s)
        try:
            reply = lambda_client.invoke(FunctionName=name, Payload=payload)
            body = reply["Payload"].read()
            if "FunctionError" in reply or json.loads(body or b"{}") != {"warmed": True}:
                failures.append(f"{logical_id}: {body[:200]!r}")
        except Exception as exc:  # a warm-up that fails is reported, never fatal to the caller's thread
            failures.append(f"{logical_id}: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    threads = [threading.Thread(target=invoke, args=call, daemon=True) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    if failures:
        raise RuntimeError(f"warm-up failed: {'; '.join(sorted(set(failures))[:3])}")
    return time.monotonic() - started
