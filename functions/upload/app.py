"""Upload function: GET /health, and the /videos routes. A thin adapter over vid2mp3 services."""

from __future__ import annotations

from typing import Any

from chalice.app import Request, Response

from vid2mp3.api import correlation_id, create_app, json_response, route
from vid2mp3.auth.identity import Identity, identity_from_authorizer
from vid2mp3.bootstrap import Deps, bootstrap, bootstrap_upload
from vid2mp3.errors import InvalidInput
from vid2mp3.health import check_health
from vid2mp3.jobs import service
from vid2mp3.log import get_logger
from vid2mp3.multipart import decoded_length, event_body_chunks

logger = get_logger("upload")
app = create_app("upload", logger)
_deps: Deps | None = None
_jobs: service.JobsDeps | None = None


def deps() -> Deps:
    """Bootstrapped on the first request of a cold start, then reused."""
    global _deps
    if _deps is None:
        _deps = bootstrap()
    return _deps


def jobs() -> service.JobsDeps:
    global _jobs
    if _jobs is None:
        _jobs = bootstrap_upload(deps(), logger=logger)
    return _jobs


def _request() -> Request:
    request = app.current_request
    if request is None:  # only outside a request, which a route never is
        raise RuntimeError("no current request")
    return request


def _caller() -> Identity:
    return identity_from_authorizer((_request().context or {}).get("authorizer"))


def _event() -> dict[str, Any]:
    event: dict[str, Any] = _request().to_original_event()
    return event


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


@route(app, "/videos", methods=["POST"], content_types=["multipart/form-data"])
def create_video() -> Response:
    caller, event = _caller(), _event()
    # The body is decoded from the event a slice at a time (never Chalice's raw_body, a second copy).
    body, b64 = event.get("body"), bool(event.get("isBase64Encoded"))
    job = service.upload_video(
        jobs(), caller, event_body_chunks(body, base64_encoded=b64),
        _request().headers.get("content-type", ""),
        correlation_id=correlation_id(event), body_length=decoded_length(body, base64_encoded=b64),
    )
    return json_response(job.to_api(), 202, {"Location": service.video_location(jobs().settings, job.id)})


@route(app, "/videos", methods=["GET"])
def list_videos() -> Response:
    params = _request().query_params
    limit, cursor = (params.get("limit"), params.get("cursor")) if params else (None, None)
    page = service.list_videos(jobs(), _caller(), limit=limit, cursor=cursor)
    return json_response(page.to_api())


@route(app, "/videos/{id}", methods=["GET"])
def get_video(id: str) -> Response:  # `id`: the path parameter's name
    return json_response(service.get_video(jobs(), _caller(), id).to_api())


@route(app, "/videos/{id}", methods=["DELETE"])
def delete_video(id: str) -> Response:
    service.delete_video(jobs(), _caller(), id)
    return Response(body="", status_code=204)


@route(app, "/videos/{id}/mp3", methods=["GET"])
def download_mp3(id: str) -> Response:
    headers = _request().headers
    caller = _caller()
    if not accepts_mp3(headers.get("accept")):
        # API Gateway sends binary bodies only to a client whose Accept matches a binary media
        # type; anyone else would get base64 text (and Chalice answers 400 for it).
        raise InvalidInput("Send `Accept: audio/mpeg` (or `*/*`) to download the MP3.", code="not_acceptable")
    got = service.download_mp3(
        jobs(), caller, id, range_header=headers.get("range"),
        if_none_match=headers.get("if-none-match"), if_range=headers.get("if-range"),
    )
    headers_out: dict[str, str | list[str]] = dict(got.headers)
    return Response(body=got.body if got.status != 304 else "", status_code=got.status, headers=headers_out)


def accepts_mp3(accept: str | None) -> bool:
    """Chalice's own test (chalice.app._matches_content_type) for audio/mpeg against `accept`."""
    if not accept:
        return False
    parts = {p.strip().lower() for p in accept.replace(";", ",").split(",")}
    return "*/*" in accept or "audio/mpeg" in parts
