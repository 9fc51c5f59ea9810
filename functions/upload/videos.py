"""Videos function: GET /health and the /videos routes that read or delete (the list, a job, its MP3,
DELETE). A thin adapter over vid2mp3 services, with no media layer: it never probes or encodes, so a new
execution environment unpacks little (a page's first requests land here, several at once).
`handler` is the Lambda handler (the Chalice app within AWS's payload limits)."""

from __future__ import annotations

from chalice.app import Request, Response

from vid2mp3.api import create_app, current_request, json_response, lambda_handler, route
from vid2mp3.auth.identity import Identity
from vid2mp3.bootstrap import UploadWiring
from vid2mp3.errors import InvalidInput
from vid2mp3.health import check_health
from vid2mp3.jobs import downloads, service
from vid2mp3.log import get_logger

logger = get_logger("videos")
app = create_app("videos", logger)
wiring = UploadWiring(logger)
handler = lambda_handler(app, logger, prepare=wiring.prepare)


def _request() -> Request:
    return current_request(app)


def _caller() -> Identity:
    return wiring.caller((_request().context or {}).get("authorizer"))


@route(app, "/health", methods=["GET"])
def health() -> Response:
    d = wiring.deps()
    ok, checks = check_health(
        {"postgres": d.db.ping, "mongodb": d.store.ping, "rabbitmq": d.publisher.ping}
    )
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if not ok:
        failing = ", ".join(name for name, c in checks.items() if c["status"] != "ok")
        body["error"] = {"code": "dependency_unavailable", "message": f"Unavailable: {failing}."}
    return json_response(body, 200 if ok else 503)


@route(app, "/videos", methods=["GET"])
def list_videos() -> Response:
    params = _request().query_params
    limit, cursor = (params.get("limit"), params.get("cursor")) if params else (None, None)
    page = service.list_videos(wiring.jobs_deps(), _caller(), limit=limit, cursor=cursor)
    return json_response(page.to_api())


@route(app, "/videos/{id}", methods=["GET"])
def get_video(id: str) -> Response:  # `id`: the path parameter's name
    return json_response(service.show_video(wiring.jobs_deps(), _caller(), id))


@route(app, "/videos/{id}", methods=["DELETE"])
def delete_video(id: str) -> Response:
    service.delete_video(wiring.jobs_deps(), _caller(), id)
    return Response(body="", status_code=204)


@route(app, "/videos/{id}/mp3", methods=["GET"])
def download_mp3(id: str) -> Response:
    headers = _request().headers
    caller = _caller()
    if not accepts_mp3(headers.get("accept")):
        if wants_json(headers.get("accept")):  # where to fetch it: a page's download button, <audio src>
            return json_response(downloads.mp3_link(wiring.jobs_deps(), caller, id),
                                 headers={"Cache-Control": "no-store"})
        # API Gateway sends binary bodies only to a client whose Accept matches a binary media
        # type; anyone else would get base64 text (and Chalice answers 400 for it).
        raise InvalidInput("Send `Accept: audio/mpeg` (or `*/*`) to download the MP3, or `Accept: "
                           "application/json` for a link to it.", code="not_acceptable")
    got = downloads.download_mp3(
        wiring.jobs_deps(), caller, id, range_header=headers.get("range"),
        if_none_match=headers.get("if-none-match"), if_range=headers.get("if-range"),
    )
    headers_out: dict[str, str | list[str]] = dict(got.headers)
    return Response(body=got.body if got.status in (200, 206) else "", status_code=got.status,
                    headers=headers_out)


def wants_json(accept: str | None) -> bool:
    return bool(accept) and "application/json" in {p.split(";")[0].strip().lower() for p in (accept or "").split(",")}


def accepts_mp3(accept: str | None) -> bool:
    """Chalice's own test (chalice.app._matches_content_type) for audio/mpeg against `accept`."""
    if not accept:
        return False
    parts = {p.strip().lower() for p in accept.replace(";", ",").split(",")}
    return "*/*" in accept or "audio/mpeg" in parts
