"""The invoke gate: Lambda's Invoke API in front of a function container's Runtime Interface Emulator.

The Lambda base image's emulator (RIE) runs one invocation at a time and crashes or answers 400 on a
second concurrent one; it reports neither a function error nor a timeout the way the Invoke API does
(no `X-Amz-Function-Error`; a timeout is the plain text "Task timed out after N.00 seconds"). Beside each
function container this sidecar serves the Invoke API on its own port, so callers (the HTTP front, the
bridge with a boto3 Lambda client) get Lambda's semantics:

- one invocation at a time: another one meanwhile gets 429 TooManyRequestsException at once (the
  caller retries, reaching another pod through the Service);
- a handler's exception (the runtime's error document) and a timeout come back as 200 with
  `X-Amz-Function-Error: Unhandled` and Lambda's error payload (Sandbox.Timedout for a timeout); a
  crashed runtime (RIE's 502) as Runtime.ExitError;
- an emulator that does not answer yet is 503 ServiceException: the function did not run, so the bridge
  holds the batch and retries instead of counting a delivery.

    python -m infra.gate --port 9000 --runtime http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOGGER = logging.getLogger("vid2mp3.gate")
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
HEALTH_PATH = "/_gate/health"


def lambda_answer(status: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """The Invoke API's answer for RIE's (status, body)."""
    function_error = {"X-Amz-Function-Error": "Unhandled", "Content-Type": "application/json"}
    request_id = str(uuid.uuid4())
    if status == 200:
        text = body.decode("utf-8", errors="replace")
        if text.startswith("Task timed out after"):
            payload = {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: {text}"}
            return 200, function_error, json.dumps(payload).encode()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        # The Python runtime's error document: errorMessage + errorType (+ requestId, stackTrace).
        if (isinstance(document, dict) and {"errorMessage", "errorType"} <= set(document)
                and "statusCode" not in document):
            return 200, function_error, body
        return 200, {"Content-Type": "application/json"}, body
    if status == 502:
        payload = {"errorType": "Runtime.ExitError",
                   "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error"}
        return 200, function_error, json.dumps(payload).encode()
    return 503, {"x-amzn-ErrorType": "ServiceException", "Content-Type": "application/json"}, json.dumps(
        {"Type": "Service", "message": f"The function's runtime answered HTTP {status}."}).encode()


class Gate:
    def __init__(self, runtime: str, read_timeout_s: float) -> None:
        self.runtime = runtime.rstrip("/")
        self.read_timeout_s = read_timeout_s
        self.busy = threading.Lock()

    def invoke(self, event: bytes) -> tuple[int, dict[str, str], bytes]:
        if not self.busy.acquire(blocking=False):
            return 429, {"x-amzn-ErrorType": "TooManyRequestsException", "Content-Type": "application/json"}, (
                b'{"Type": "User", "message": "Rate Exceeded.", '
                b'"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}')
        try:
            request = urllib.request.Request(self.runtime + INVOKE_PATH, data=event, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.read_timeout_s) as resp:  # noqa: S310
                    return lambda_answer(resp.status, resp.read())
            except urllib.error.HTTPError as exc:
                return lambda_answer(exc.code, exc.read())
            except (urllib.error.URLError, OSError) as exc:
                LOGGER.warning(json.dumps({"event": "runtime_unreachable", "error": str(exc)}))
                return 503, {"x-amzn-ErrorType": "ServiceException", "Content-Type": "application/json"}, (
                    b'{"Type": "Service", "message": "The function\'s runtime is not reachable."}')
        finally:
            self.busy.release()

    def ready(self) -> bool:
        parts = urllib.parse.urlsplit(self.runtime)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 8080), timeout=1):
                return True
        except OSError:
            return False


def make_handler(gate: Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 35  # an idle keep-alive connection ends, so a stopping server can join its thread

        def do_GET(self) -> None:
            ok = self.path == HEALTH_PATH and gate.ready()
            self._send(200 if ok else 503, {"Content-Type": "application/json"},
                       b'{"status": "ok"}' if ok else b'{"status": "unavailable"}')

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not (path.startswith("/2015-03-31/functions/") and path.endswith("/invocations")):
                self._send(404, {"Content-Type": "application/json"}, b'{"message": "not found"}')
                return
            self._send(*gate.invoke(body))

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def fire(url: str, function: str, event: str, timeout_s: float, *, wait_busy_s: float = 60.0) -> int:
    """EventBridge's part: one scheduled event to the function (retried while its pod is busy)."""
    import time

    from infra.sample_events import scheduled_sample

    body = json.dumps(scheduled_sample(function, event)).encode()
    deadline = time.monotonic() + wait_busy_s
    while True:
        request = urllib.request.Request(url.rstrip("/") + INVOKE_PATH, data=body, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout_s + 30) as resp:  # noqa: S310
                answer = resp.read()
                failed = bool(resp.headers.get("X-Amz-Function-Error"))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (429, 503) and time.monotonic() < deadline:
                time.sleep(2)
                continue
            LOGGER.error(json.dumps({"event": "schedule_failed", "function": function, "status": exc.code}))
            return 1
        LOGGER.info(json.dumps({"event": "scheduled_invocation", "function": function, "function_error": failed,
                                "result": answer[:300].decode("utf-8", "replace")}))
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.gate", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a sidecar in its own pod
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--runtime", default="http://127.0.0.1:8080", help="the function container's RIE")
    parser.add_argument("--timeout", type=float, default=900.0, help="the function's timeout, in seconds")
    parser.add_argument("--fire", metavar="URL", help="instead of serving: send the scheduled event of "
                        "--function's --event to the gate at URL once (a CronJob's run)")
    parser.add_argument("--function", help="with --fire: the function's logical id")
    parser.add_argument("--event", help="with --fire: the Schedule event's logical id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.fire:
        return fire(args.fire, args.function or "", args.event or "", args.timeout)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Gate(args.runtime, args.timeout + 30)))
    # On SIGTERM: stop accepting, then let the requests in flight finish (server_close joins their threads).
    server.daemon_threads = False
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
