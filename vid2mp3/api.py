"""HTTP plumbing shared by the Chalice apps: error shaping, JSON responses, correlation ids."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from chalice.app import Chalice, ChaliceViewError, Request, Response

from vid2mp3 import errors
from vid2mp3.http import JSON_HEADERS, error_parts, with_standard_headers
from vid2mp3.limits import enforce_aws_limits
from vid2mp3.warmup import warmable

# Request and response bodies of these types travel base64-encoded through API Gateway. The same
# list is declared as BinaryMediaTypes in infra/template.yaml.
BINARY_TYPES = ["multipart/form-data", "audio/mpeg", "application/octet-stream", "application/offset+octet-stream"]

F = TypeVar("F", bound=Callable[..., Response])


def create_app(name: str, logger: Logger) -> Chalice:
    # A name distinct from the Powertools service name: Chalice and Powertools would otherwise
    # share (and configure) the same stdlib logger.
    app = Chalice(app_name=f"{name}-http")
    app.api.binary_types = list(BINARY_TYPES)
    app.register_middleware(_reshape_chalice_errors, "http")
    app.experimental_feature_flags = set()
    app.__dict__["vid2mp3_logger"] = logger
    return app


def lambda_handler(app: Chalice, logger: Logger, *, prepare: Callable[[], None] | None = None
                   ) -> Callable[[dict[str, Any], Any], Any]:
    """The function's handler: the Chalice app within AWS's payload limits (vid2mp3.limits), which the
    local emulator does not apply itself, and every response with the standard headers (nosniff,
    Cache-Control), whichever route, error or refusal made it. It answers the warm-up event
    (vid2mp3.warmup) after `prepare()`."""

    def refused(what: str, size: int) -> None:
        logger.warning(f"{what} over AWS's payload limits refused", extra={"bytes": size})

    guarded = enforce_aws_limits(app, refused)

    def handler(event: dict[str, Any], context: Any) -> Any:
        return with_standard_headers(guarded(event, context))

    return warmable(handler, prepare)


def current_request(app: Chalice) -> Request:
    """The request a route of `app` is answering."""
    request = app.current_request
    if request is None:  # only outside a request, which a route never is
        raise RuntimeError("no current request")
    return request


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    merged: dict[str, str | list[str]] = {**JSON_HEADERS, **(headers or {})}
    return Response(body=json.dumps(body), status_code=status, headers=merged)


def error_response(exc: Exception) -> Response:
    status, headers, body = error_parts(exc)
    return Response(body=body, status_code=status, headers=dict(headers))


def correlation_id(event: dict[str, Any] | None) -> str:
    """The caller's X-Correlation-Id when it is sane, else API Gateway's request id, else a new one."""
    headers = {k.lower(): v for k, v in ((event or {}).get("headers") or {}).items()}
    given = headers.get("x-correlation-id", "")
    if re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", given):
        return str(given)
    request_id = ((event or {}).get("requestContext") or {}).get("requestId")
    return str(request_id) if request_id else str(uuid.uuid4())


def route(app: Chalice, path: str, *, finish: Callable[[Response], Response] | None = None,
          **kwargs: Any) -> Callable[[F], F]:
    """`app.route` whose view maps every error to the one error shape and never leaks internals.

    `finish`, when given, sees every response of the route, errors included (protocol headers)."""
    logger: Logger = app.__dict__["vid2mp3_logger"]

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kw: Any) -> Response:
            request = app.current_request
            event = request.to_original_event() if request is not None else None
            logger.set_correlation_id(correlation_id(event))
            response = _respond(view, args, kw)
            return finish(response) if finish is not None else response

        def _respond(view: F, args: tuple[Any, ...], kw: dict[str, Any]) -> Response:
            try:
                return view(*args, **kw)
            except errors.AppError as exc:
                logger.info("request refused", extra={"code": exc.code, "path": path})
                return error_response(exc)
            except ChaliceViewError as exc:
                return error_response(_from_chalice(type(exc).__name__, str(exc)))
            except errors.ConfigError as exc:
                logger.error(f"configuration error: {exc}")  # one line, names the variable
                return error_response(errors.AppError())
            except Exception:
                logger.exception("unhandled error", extra={"path": path})
                return error_response(errors.AppError())

        app.route(path, **kwargs)(wrapped)
        return wrapped  # type: ignore[return-value]

    return decorate


def _from_chalice(name: str, message: str) -> errors.AppError:
    mapping: dict[str, type[errors.AppError]] = {
        "BadRequestError": errors.InvalidInput,
        "NotFoundError": errors.NotFound,
        "UnauthorizedError": errors.Unauthorized,
    }
    if name == "BadRequestError" and "json" in message.lower():
        return errors.InvalidInput("The request body is not valid JSON.", code="invalid_json")
    return mapping.get(name, errors.AppError)(message or None)


def _reshape_chalice_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice answers 405/415/400 itself with {"Code", "Message"}; give them our error shape."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", str(body["Code"]).removesuffix("Error")).lower()
        response.body = json.dumps({"error": {"code": code, "message": str(body.get("Message", ""))}})
        response.headers = {**response.headers, **JSON_HEADERS}
    return response
