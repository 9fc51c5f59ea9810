"""The health service: is every backing service reachable?"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vid2mp3.errors import DependencyUnavailable

Check = Callable[[], None]


def check_health(checks: Mapping[str, Check]) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check concurrently; returns (all ok, per-check status)."""

    def run(check: Check) -> dict[str, Any]:
        try:
            check()
        except DependencyUnavailable as exc:
            return {"status": "unavailable", "message": exc.message}
        return {"status": "ok"}

    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        results = dict(zip(checks, pool.map(run, checks.values()), strict=True))
    return all(r["status"] == "ok" for r in results.values()), results
