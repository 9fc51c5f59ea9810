"""AWS's payload limits, enforced by the functions themselves so that the local emulator (which
enforces none of them) fails exactly where API Gateway and Lambda would.

- API Gateway REST: at most 10 MiB of request body (413 before anything runs).
- Lambda, synchronous invoke: at most 6 MB of event and 6 MB of response, counted on the JSON
  envelope, where a binary body travels base64-encoded (4 MiB raw is 5.6 MB). API Gateway answers
  413 "Request Too Long" for an event over the limit and 502 for a response over it.

So no body through the API exceeds MAX_BODY_BYTES raw: uploads go in tus PATCHes of at most that,
downloads in Range responses of at most that, or by a redirect to storage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vid2mp3.http import error_body

MIB = 1024 * 1024
API_GATEWAY_MAX_REQUEST_BYTES = 10 * MIB
LAMBDA_MAX_REQUEST_BYTES = 6 * MIB  # 6,291,456: the event, as JSON
LAMBDA_MAX_RESPONSE_BYTES = 6 * MIB + 100  # 6,291,556: what Lambda names in its error
# The most raw bytes one request or response body may carry through the API: its base64 form and the
# rest of the event (headers, request context) stay well under the Lambda limits.
MAX_BODY_BYTES = 4 * MIB

# How long a request may spend removing stored bytes before it leaves the rest to the scheduled
# function: a 2 GiB video on a slow MongoDB-wire server takes longer than API Gateway's 29 s.
DELETE_BUDGET_S = 10.0

Handler = Callable[[dict[str, Any], Any], Any]

REQUEST_TOO_LARGE = (
    "The request is larger than the API accepts ({limit}: API Gateway and Lambda limits, with the body "
    "base64-encoded). Send files over 4 MiB with the resumable upload API (POST /uploads, tus), in parts of "
    "at most 4 MiB."
)


def envelope_size(envelope: dict[str, Any]) -> int:
    """The size of an event or response as Lambda counts it: its JSON, body included (no second copy
    of a multi-megabyte body is made to count it)."""
    body = envelope.get("body")
    rest = len(json.dumps({k: v for k, v in envelope.items() if k != "body"}))
    if isinstance(body, str) and envelope.get("isBase64Encoded"):
        # Base64 (the large bodies): nothing in it is escaped in JSON; counted without a pass over it.
        return rest + len(body) + 2
    return rest + len(json.dumps(body))


def _declared_length(event: dict[str, Any]) -> int | None:
    for name, value in (event.get("headers") or {}).items():
        if str(name).lower() == "content-length":
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def _refusal(status: int, code: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(error_body(code, message)), "isBase64Encoded": False}


def check_request(event: dict[str, Any]) -> dict[str, Any] | None:
    """The response API Gateway would give instead of invoking the function, or None to go on."""
    declared = _declared_length(event)
    if declared is not None and declared > API_GATEWAY_MAX_REQUEST_BYTES:
        return _refusal(413, "request_too_large", REQUEST_TOO_LARGE.format(limit="10 MiB per request"))
    if envelope_size(event) > LAMBDA_MAX_REQUEST_BYTES:
        return _refusal(413, "request_too_large", REQUEST_TOO_LARGE.format(limit="6 MB per request"))
    return None


def check_response(response: Any) -> Any:
    """The response, or the 502 API Gateway gives when a function's response is over Lambda's limit."""
    if isinstance(response, dict) and envelope_size(response) > LAMBDA_MAX_RESPONSE_BYTES:
        return _refusal(502, "response_too_large",
                        "The response was larger than the API can return (6 MB); this is a bug on our side.")
    return response


def enforce_aws_limits(handler: Handler, on_refusal: Callable[[str, int], None] | None = None) -> Handler:
    """`handler` (an API Gateway proxy handler, such as a Chalice app) with AWS's payload limits applied.

    On AWS the limits are applied before the function runs, and this finds nothing to refuse; on an
    emulator that enforces none of them, it refuses what AWS would. `on_refusal(what, size)` is told
    of each refusal (for a log line).
    """

    def guarded(event: dict[str, Any], context: Any) -> Any:
        refused = check_request(event)
        if refused is not None:
            if on_refusal is not None:
                on_refusal("request", envelope_size(event))
            return refused
        response = handler(event, context)
        checked = check_response(response)
        if checked is not response and on_refusal is not None:
            on_refusal("response", envelope_size(response))
        return checked

    return guarded
