"""The HTTP front on Kubernetes: the smallest API Gateway (REST, Lambda proxy, TOKEN authorizer) there is.

No off-the-shelf component plays API Gateway's TOKEN authorizer flow against Lambda-packaged functions
(`sam local start-api` needs Docker; an AWS emulator brings all of AWS), so this does just that, from
infra/template.yaml (routes, binary media types, authorizer, gateway responses; see infra.apigw):

    request -> route (or MISSING_AUTHENTICATION_TOKEN) -> TOKEN authorizer, its answer cached per token
    for ReauthorizeEvery seconds (401 / 403 / 500 as API Gateway) -> the proxy event -> the function
    -> the proxy response (or 502 for a function error, 504 past the 29 s integration timeout).

Each function runs in its own pods (the Lambda base image; its Runtime Interface Emulator behind the
invoke gate, infra/gate.py) behind a Service named after it (`FUNCTION_URL`, `{name}` replaced by the
Kubernetes name of the function's logical id). A gate serves one invocation at a time and answers 429
while busy, as Lambda's sandbox runs one at a time; the front retries another pod until the integration
timeout, as API Gateway's Lambda integration does when Lambda scales out.

    python -m infra.front --template infra/template.yaml --port 8080 --function-url http://{name}:9000
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from infra import apigw
from infra.template_model import TEMPLATE, load_template

LOGGER = logging.getLogger("vid2mp3.front")
HEALTH_PATH = "/_front/health"  # the front's own probe; not an API route


@dataclass(frozen=True)
class Invocation:
    payload: bytes
    function_error: bool


class IntegrationError(Exception):
    """The function could not be invoked: the gateway response kind to answer with."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


Invoker = Callable[[str, bytes, float], Invocation]  # (logical id, event, deadline) -> result


def k8s_name(logical_id: str) -> str:
    """`AuthFunction` -> `auth-function`: a Kubernetes (DNS-1035) name for a logical id."""
    out = []
    for i, ch in enumerate(logical_id):
        if ch.isupper() and i and (logical_id[i - 1].islower() or (i + 1 < len(logical_id)
                                                                   and logical_id[i + 1].islower())):
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


class Front:
    """API Gateway's request flow for one RestApi; `invoke` calls a function by logical id."""

    def __init__(self, api: apigw.RestApi, invoke: Invoker, *, clock: Callable[[], float] = time.monotonic,
                 integration_timeout_s: float = apigw.INTEGRATION_TIMEOUT_S) -> None:
        self.api = api
        self._invoke = invoke
        self._clock = clock
        self._timeout = integration_timeout_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _gateway(self, kind: str) -> apigw.HttpResponse:
        status, headers, body = self.api.gateway_response(kind)
        return apigw.HttpResponse(status, list(headers.items()), body)

    def handle(self, request: apigw.HttpRequest) -> apigw.HttpResponse:
        if len(request.body) > apigw.MAX_PAYLOAD_BYTES:
            return self._gateway("REQUEST_TOO_LARGE")
        found = self.api.resolve(request.method, request.path)
        if found is None:
            return self._gateway("MISSING_AUTHENTICATION_TOKEN")
        route, params = found
        deadline = self._clock() + self._timeout
        context = None
        try:
            if route.authorized and self.api.authorizer is not None:
                context = self._authorize(request, deadline)
            event = apigw.proxy_event(self.api, route, params, request, authorizer_context=context)
            result = self._invoke(route.function, json.dumps(event).encode(), deadline)
        except apigw.AuthorizerRejected as exc:
            return self._gateway(exc.kind)
        except IntegrationError as exc:
            LOGGER.warning(json.dumps({"event": "integration_error", "function": route.function, "error": str(exc)}))
            return self._gateway(exc.kind)
        if result.function_error:
            LOGGER.warning(json.dumps({"event": "function_error", "function": route.function,
                                       "error": result.payload[:300].decode("utf-8", "replace")}))
            return self._gateway("BAD_GATEWAY")
        try:
            answer = json.loads(result.payload)
        except ValueError:
            return self._gateway("BAD_GATEWAY")
        return apigw.http_response(self.api, answer, request)

    def _authorize(self, request: apigw.HttpRequest, deadline: float) -> dict[str, Any]:
        authorizer = self.api.authorizer
        assert authorizer is not None
        token = request.header(authorizer.header)
        if not token or (authorizer.validation is not None and not authorizer.validation.fullmatch(token)):
            raise apigw.AuthorizerRejected("UNAUTHORIZED")  # the authorizer is not even called
        method_arn = self.api.method_arn(request.method, request.path)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return apigw.authorizer_decision(cached[1], method_arn)
        result = self._invoke(authorizer.function, json.dumps(apigw.token_event(self.api, request, token)).encode(),
                              deadline)
        if result.function_error:
            try:
                message = json.loads(result.payload).get("errorMessage")
            except (ValueError, AttributeError):
                message = None
            # "Unauthorized" is the one error message API Gateway turns into 401.
            raise apigw.AuthorizerRejected("UNAUTHORIZED" if message == "Unauthorized" else "AUTHORIZER_FAILURE")
        try:
            response = json.loads(result.payload)
        except ValueError as exc:
            raise apigw.AuthorizerRejected("AUTHORIZER_CONFIGURATION_ERROR") from exc
        decision = apigw.authorizer_decision(response, method_arn)
        if authorizer.ttl_s > 0:
            with self._lock:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                self._cache[token] = (now + authorizer.ttl_s, response)
        return decision


# --------------------------------------------------------------------------------------------------
# Invoking over HTTP (the Lambda Invoke API of each function's gate)


def http_invoker(function_url: str, *, retry_s: float = 0.05) -> Invoker:
    """Invoke through the Lambda Invoke API at `function_url` (`{name}` = the function's Kubernetes
    name), retrying a busy (429) or unreachable pod with jittered backoff until the deadline."""

    def invoke(logical_id: str, event: bytes, deadline: float) -> Invocation:
        url = function_url.format(name=k8s_name(logical_id)).rstrip("/") + "/2015-03-31/functions/function/invocations"
        delay = retry_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise IntegrationError("INTEGRATION_TIMEOUT", f"{logical_id}: no answer within the integration timeout")
            request = urllib.request.Request(url, data=event, method="POST",  # noqa: S310 - http(s) only
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=remaining) as resp:  # noqa: S310 - our own URL
                    return Invocation(resp.read(), bool(resp.headers.get("X-Amz-Function-Error")))
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503):
                    raise IntegrationError("INTEGRATION_FAILURE", f"{logical_id}: HTTP {exc.code}") from exc
            except TimeoutError as exc:
                raise IntegrationError("INTEGRATION_TIMEOUT", f"{logical_id}: timed out") from exc
            except (urllib.error.URLError, OSError) as exc:
                LOGGER.info(json.dumps({"event": "invoke_retry", "function": logical_id, "error": str(exc)}))
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    return invoke


# --------------------------------------------------------------------------------------------------
# The HTTP server


def _source_ip(peer: str, forwarded: str | None) -> str:
    """The client's address: the peer's, or behind an in-cluster proxy (a private peer) the address that
    proxy appended to X-Forwarded-For (the last entry: earlier ones are the client's to write)."""
    try:
        private = ip_address(peer).is_private
    except ValueError:
        private = False
    if forwarded and private:
        return forwarded.split(",")[-1].strip() or peer
    return peer


def make_handler(front: Front) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "vid2mp3-front"
        timeout = 35  # an idle keep-alive connection ends, so a stopping server can join its thread

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == HEALTH_PATH:
                self._send(apigw.HttpResponse(200, [("Content-Type", "application/json")], b'{"status": "ok"}'))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > apigw.MAX_PAYLOAD_BYTES:
                self.close_connection = True
                status, headers, body = front.api.gateway_response("REQUEST_TOO_LARGE")
                self._send(apigw.HttpResponse(status, list(headers.items()), body))
                return
            body = self.rfile.read(length) if length else b""
            request = apigw.HttpRequest(
                method=self.command, path=urllib.parse.unquote(parts.path) or "/",
                headers=list(self.headers.items()),
                query=urllib.parse.parse_qsl(parts.query, keep_blank_values=True),
                body=body, source_ip=_source_ip(self.client_address[0], self.headers.get("X-Forwarded-For")),
            )
            started = time.monotonic()
            response = front.handle(request)
            self._send(response)
            LOGGER.info(json.dumps({"event": "request", "method": self.command, "path": parts.path,
                                    "status": response.status, "ms": int((time.monotonic() - started) * 1000)}))

        def _send(self, response: apigw.HttpResponse) -> None:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one JSON line per request instead (above)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.front", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in its own pod
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--function-url", default="http://{name}:9000",
                        help="base URL of each function's Lambda Invoke API; {name} = its Kubernetes name")
    parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from infra.invoke import parse_parameter_overrides

    api = apigw.rest_api(load_template(args.template), parse_parameter_overrides(args.parameter_overrides))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Front(api, http_invoker(args.function_url))))
    # On SIGTERM: stop accepting, then let the requests in flight finish (server_close joins their threads).
    server.daemon_threads = False
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    LOGGER.info(json.dumps({"event": "listening", "port": args.port, "routes": len(api.routes)}))
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
