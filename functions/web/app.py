"""Web function: the page at GET / and its files at GET /static/{name}. A thin adapter over vid2mp3.web.

It needs no database, broker or ffmpeg: the page talks to the API from the browser, so its function
stays small and starts fast, and loading the page never wakes the upload function. `handler` is the
Lambda handler (the Chalice app within AWS's payload limits).
"""

from __future__ import annotations

from pathlib import Path

from chalice.app import Request, Response

from vid2mp3.api import create_app, lambda_handler, route
from vid2mp3.log import get_logger
from vid2mp3.web import Reply, Site

STATIC = Path(__file__).resolve().parent / "static"

logger = get_logger("web")
app = create_app("web", logger)
handler = lambda_handler(app, logger)
site = Site(STATIC)  # read once per cold start


def _request() -> Request:
    request = app.current_request
    if request is None:  # only outside a request, which a route never is
        raise RuntimeError("no current request")
    return request


def _response(reply: Reply) -> Response:
    headers: dict[str, str | list[str]] = dict(reply.headers)
    return Response(body=reply.body, status_code=reply.status, headers=headers)


@route(app, "/", methods=["GET"])
def page() -> Response:
    request = _request()
    path = (request.context or {}).get("path")
    return _response(site.page(path, if_none_match=request.headers.get("if-none-match")))


@route(app, "/static/{name}", methods=["GET"])
def asset(name: str) -> Response:
    request = _request()
    params = request.query_params
    version = params.get("v") if params else None
    return _response(site.asset(name, version=version, if_none_match=request.headers.get("if-none-match")))
