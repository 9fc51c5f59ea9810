"""Upload function: GET /health, the /videos routes and the tus /uploads routes. A thin adapter over
vid2mp3 services; `handler` is the Lambda handler (the Chalice app within AWS's payload limits)."""

from __future__ import annotations

from typing import Any

from chalice.app import Request, Response

from vid2mp3.api import correlation_id, create_app, json_response, lambda_handler, route
from vid2mp3.auth.identity import Identity, check_session, identity_from_authorizer
from vid2mp3.bootstrap import Deps, bootstrap, bootstrap_upload, bootstrap_uploads
from vid2mp3.errors import InvalidInput
from vid2mp3.health import check_health
from vid2mp3.jobs import downloads, service
from vid2mp3.log import get_logger
from vid2mp3.multipart import decode_base64, decoded_length, event_body_chunks
from vid2mp3.uploads import Upload, tus
from vid2mp3.uploads import service as uploads

logger = get_logger("upload")
app = create_app("upload", logger)
handler = lambda_handler(app, logger)
_deps: Deps | None = None
_jobs: service.JobsDeps | None = None
_uploads: uploads.UploadsDeps | None = None


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


def resumable() -> uploads.UploadsDeps:
    global _uploads
    if _uploads is None:
        _uploads = bootstrap_uploads(jobs(), db=deps().db)
    return _uploads


def _request() -> Request:
    request = app.current_request
    if request is None:  # only outside a request, which a route never is
        raise RuntimeError("no current request")
    return request


def _caller() -> Identity:
    """The caller, whose token must still be good: the gateway may replay a cached Allow for a minute,
    but a token revoked by a password change or the account's deletion is refused at once here."""
    identity = identity_from_authorizer((_request().context or {}).get("authorizer"))
    sessions = jobs().sessions
    return identity if sessions is None else check_session(identity, sessions)


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


# --- /videos ----------------------------------------------------------------------------------------


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
    return json_response(service.show_video(jobs(), _caller(), id))


@route(app, "/videos/{id}", methods=["DELETE"])
def delete_video(id: str) -> Response:
    service.delete_video(jobs(), _caller(), id)
    return Response(body="", status_code=204)


@route(app, "/videos/{id}/mp3", methods=["GET"])
def download_mp3(id: str) -> Response:
    headers = _request().headers
    caller = _caller()
    if not accepts_mp3(headers.get("accept")):
        if wants_json(headers.get("accept")):  # where to fetch it: a page's download button, <audio src>
            return json_response(downloads.mp3_link(jobs(), caller, id), headers={"Cache-Control": "no-store"})
        # API Gateway sends binary bodies only to a client whose Accept matches a binary media
        # type; anyone else would get base64 text (and Chalice answers 400 for it).
        raise InvalidInput("Send `Accept: audio/mpeg` (or `*/*`) to download the MP3, or `Accept: "
                           "application/json` for a link to it.", code="not_acceptable")
    got = downloads.download_mp3(
        jobs(), caller, id, range_header=headers.get("range"),
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


# --- /uploads: tus 1.0.0 --------------------------------------------------------------------------


def _tus_headers(response: Response) -> Response:
    """Every tus response: Tus-Resumable, CORS for allowed origins, and no body for HEAD."""
    request = _request()
    origin = request.headers.get("origin")
    extra = {"Tus-Resumable": tus.TUS_VERSION,
             **tus.cors_headers(origin, jobs().settings.allowed_origins, preflight=request.method == "OPTIONS")}
    if response.status_code == 412:  # another protocol version: say which one this server speaks
        extra["Tus-Version"] = tus.TUS_VERSION
    response.headers = {**response.headers, **extra}
    if _method() == "HEAD":
        response.body = ""
    return response


def _method() -> str:
    """The request's method, or the one X-HTTP-Method-Override names on a POST to an upload."""
    request = _request()
    override = (request.headers.get("x-http-method-override") or "").strip().upper()
    if request.method == "POST" and override and (request.uri_params or {}).get("id") is not None:
        return override
    return str(request.method)


def _body() -> bytes:
    event = _event()
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return decode_base64(body)


def _state(upload: Upload, job_url: str | None) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length),
               "Cache-Control": "no-store", **uploads.expires_header(upload)}
    if job_url:
        headers["Vid2mp3-Job"] = job_url  # the job this upload became: GET it for the conversion
    return headers


def _job_url(upload: Upload) -> str | None:
    return service.video_location(jobs().settings, upload.job_id) if upload.finished else None


def _empty(status: int, headers: dict[str, str] | None = None) -> Response:
    out: dict[str, str | list[str]] = dict(headers or {})
    return Response(body="", status_code=status, headers=out)


def tus_options(id: str | None = None) -> Response:
    """What the server offers; also the CORS preflight, which browsers send without a token."""
    return _empty(204, uploads.discovery_headers(resumable()))


def tus_create() -> Response:
    headers = _request().headers
    tus.check_version(headers)
    done = uploads.create(resumable(), _caller(), headers, correlation_id=correlation_id(_event()),
                          body=_body() or None)
    out = {"Location": uploads.upload_location(resumable(), done.upload.id), **uploads.expires_header(done.upload)}
    if done.upload.offset or done.upload.finished:
        out.update(_state(done.upload, _job_url(done.upload)))
    return _empty(201, out)


def tus_head(id: str) -> Response:
    tus.check_version(_request().headers)
    upload = uploads.status(resumable(), _caller(), id)
    headers = _state(upload, _job_url(upload))
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return _empty(200, headers)


def tus_patch(id: str) -> Response:
    headers = _request().headers
    tus.check_version(headers)
    tus.check_content_type(headers)
    done = uploads.append(resumable(), _caller(), id, tus.parse_offset(headers.get("upload-offset")), _body(),
                          checksum=tus.parse_checksum(headers.get("upload-checksum")))
    return _empty(204, _state(done.upload, _job_url(done.upload)))


def tus_delete(id: str) -> Response:
    tus.check_version(_request().headers)
    uploads.terminate(resumable(), _caller(), id)
    return _empty(204)


def tus_override(id: str) -> Response:
    """X-HTTP-Method-Override: a POST standing for a PATCH, DELETE or HEAD (clients behind proxies
    that allow only GET and POST)."""
    views = {"PATCH": tus_patch, "DELETE": tus_delete, "HEAD": tus_head}
    view = views.get(_method())
    if view is None:
        raise InvalidInput("POST to an upload needs `X-HTTP-Method-Override: PATCH` (or DELETE, HEAD).",
                           code="method_override_missing")
    return view(id)


# Every tus route; `content_types` "*/*": the tus rules (415 for a PATCH of another type) are ours.
for _path, _method_name, _view in (
    ("/uploads", "OPTIONS", tus_options), ("/uploads/{id}", "OPTIONS", tus_options),
    ("/uploads", "POST", tus_create), ("/uploads/{id}", "HEAD", tus_head),
    ("/uploads/{id}", "PATCH", tus_patch), ("/uploads/{id}", "DELETE", tus_delete),
    ("/uploads/{id}", "POST", tus_override),
):
    route(app, _path, methods=[_method_name], content_types=["*/*"], finish=_tus_headers)(_view)
