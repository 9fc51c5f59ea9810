"""Upload function: POST /videos (multipart, small files) and the tus 1.0.0 routes of /uploads
(resumable, any size). A thin adapter over vid2mp3 services, with the ffprobe layer: it probes what it
stores. `handler` is the Lambda handler (the Chalice app within AWS's payload limits)."""

from __future__ import annotations

from typing import Any

from chalice.app import Request, Response

from vid2mp3.api import correlation_id, create_app, current_request, json_response, lambda_handler, route
from vid2mp3.auth.identity import Identity
from vid2mp3.bodies import decode_base64, decoded_length, event_body_chunks
from vid2mp3.bootstrap import UploadWiring
from vid2mp3.errors import InvalidInput
from vid2mp3.jobs import service
from vid2mp3.log import get_logger
from vid2mp3.uploads import Upload, tus
from vid2mp3.uploads import service as uploads

logger = get_logger("upload")
app = create_app("upload", logger)
wiring = UploadWiring(logger)
handler = lambda_handler(app, logger, prepare=wiring.prepare)


def jobs() -> service.JobsDeps:
    return wiring.jobs_deps()


def resumable() -> uploads.UploadsDeps:
    return wiring.uploads_deps()


def _request() -> Request:
    return current_request(app)


def _caller() -> Identity:
    return wiring.caller((_request().context or {}).get("authorizer"))


def _event() -> dict[str, Any]:
    event: dict[str, Any] = _request().to_original_event()
    return event


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
