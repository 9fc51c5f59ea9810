"""The invoke gate (infra/gate.py) gives the bridge and the front Lambda's Invoke API over a function
container's Runtime Interface Emulator.

The emulator is a Go binary inside the Lambda base image, not available here; `_Rie` plays the answers
its source gives (cmd/aws-lambda-rie/handlers.go: 200 with the runtime's body, including the Python
runtime's error document; 200 "Task timed out after N.00 seconds"; 502 for a crashed runtime). The
bridge's own classification (`infra.bridge._invoke`, through a boto3 Lambda client) is what is checked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from infra import bridge, procs
from infra.gate import Gate, make_handler


class _Rie(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(event.get("sleep", 0))
        status, body = 200, json.dumps({"ok": True, "echo": event}).encode()
        if event.get("raise"):
            body = json.dumps({"errorMessage": "boom", "errorType": "ValueError", "requestId": "r",
                               "stackTrace": []}).encode()
        elif event.get("timeout"):
            body = b"Task timed out after 3.00 seconds"
        elif event.get("crash"):
            status, body = 502, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def gate_url() -> Iterator[str]:
    rie, rie_url = _serve(_Rie)
    gate, url = _serve(make_handler(Gate(rie_url, read_timeout_s=30)))
    yield url
    for server in (gate, rie):
        server.shutdown()
        server.server_close()


def invoke(url: str, event: dict[str, Any]) -> bridge._Result:
    return bridge._invoke(bridge.lambda_client(url, read_timeout_s=30), "function", event)


def test_a_result_is_ok_and_a_raised_error_is_a_function_error(gate_url: str) -> None:
    client = bridge.lambda_client(gate_url, read_timeout_s=30)
    response = client.invoke(FunctionName="function", Payload=b'{"a": 1}')
    assert json.loads(response["Payload"].read()) == {"ok": True, "echo": {"a": 1}}
    assert "FunctionError" not in response
    raised = client.invoke(FunctionName="function", Payload=b'{"raise": true}')
    assert raised["FunctionError"] == "Unhandled"
    assert json.loads(raised["Payload"].read())["errorType"] == "ValueError"
    assert invoke(gate_url, {"raise": True}).outcome == "function_error"


def test_timeouts_and_crashes_are_function_errors_as_on_lambda(gate_url: str) -> None:
    client = bridge.lambda_client(gate_url, read_timeout_s=30)
    timed_out = client.invoke(FunctionName="function", Payload=b'{"timeout": true}')
    payload = json.loads(timed_out["Payload"].read())
    assert timed_out["FunctionError"] == "Unhandled" and payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Task timed out after 3.00 seconds")
    assert invoke(gate_url, {"crash": True}).outcome == "function_error"


def test_one_invocation_at_a_time_a_second_is_throttled(gate_url: str) -> None:
    slow = threading.Thread(target=invoke, args=(gate_url, {"sleep": 1.5}))
    slow.start()
    time.sleep(0.5)
    busy = invoke(gate_url, {"a": 2})
    slow.join()
    assert busy.outcome == "lambda_unavailable" and "TooManyRequestsException" in str(busy.detail)
    assert busy.hold  # the bridge keeps the batch and retries: the function did not run
    assert invoke(gate_url, {"a": 3}).outcome == "ok"


def test_an_emulator_not_up_yet_is_held_not_counted() -> None:
    gate, url = _serve(make_handler(Gate(f"http://127.0.0.1:{procs.free_port()}", read_timeout_s=5)))
    try:
        result = invoke(url, {"a": 1})
        assert result.outcome == "lambda_unavailable" and result.hold
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(f"{url}/_gate/health", timeout=5)
        assert unready.value.code == 503
        unready.value.close()
    finally:
        gate.shutdown()
        gate.server_close()


def test_the_bridge_drives_one_functions_queues_through_its_gate() -> None:
    mappings, timeout = bridge.mappings_for_function("ConvertFunction", {"MQVirtualHost": "wt"})
    assert {m.source.queue for m in mappings} == {"video_conversion_queue", "video_conversion_queue.dlq"}
    assert {(m.function, m.source.concurrency, m.source.virtual_host) for m in mappings} == {("function", 1, "wt")}
    assert timeout == 900
    with pytest.raises(bridge.BridgeError):
        bridge.mappings_for_function("AuthFunction", {})
