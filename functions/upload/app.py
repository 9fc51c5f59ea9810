"""Upload function: GET /health, and the /videos routes. A thin adapter over vid2mp3 services."""

from __future__ import annotations

from chalice.app import Response

from vid2mp3.api import create_app, json_response, route
from vid2mp3.bootstrap import Deps, bootstrap
from vid2mp3.health import check_health
from vid2mp3.log import get_logger

logger = get_logger("upload")
app = create_app("upload", logger)
_deps: Deps | None = None


def deps() -> Deps:
    """Bootstrapped on the first request of a cold start, then reused."""
    global _deps
    if _deps is None:
        _deps = bootstrap()
    return _deps


@route(app, "/health", methods=["GET"])
def health() -> Response:
    d = deps()
    ok, checks = check_health(
        {"postgres": d.db.ping, "mongodb": d.store.ping, "rabbitmq": d.publisher.ping}
    )
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if not ok:
        failing = ", ".join(name for name, c in checks.items() if c["status"] != "ok")
        body["error"] = {"code": "dependency_unavailable", "message": f"Unavailable: {failing}."}
    return json_response(body, 200 if ok else 503)
