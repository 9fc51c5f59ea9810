"""The e2e tier drives the deployed template on the emulator over HTTP, like a user.

It reuses a running `make run` when there is one; otherwise it brings the stack up exactly as the
run command does (on a free emulator port) and stops it afterwards.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import procs
from infra.local import STATE_DIR, LocalRun
from tests.conftest import fresh_database


@dataclass(frozen=True)
class Stack:
    api_url: str
    parameters: dict[str, str]
    mail_dir: Path
    local: LocalRun | None
    endpoint: str = ""  # the emulator's AWS endpoint
    stack_name: str = ""

    def client(self, service: str) -> Any:
        import boto3

        from infra.aws import CREDENTIALS, REGION

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def function_name(self, logical_id: str) -> str:
        return str(self.client("cloudformation").describe_stack_resource(
            StackName=self.stack_name, LogicalResourceId=logical_id)["StackResourceDetail"]["PhysicalResourceId"])

    def log_lines(self, logical_id: str) -> list[str]:
        """What the function wrote to its CloudWatch log group (the emulator's), oldest first."""
        logs = self.client("logs")
        group = f"/aws/lambda/{self.function_name(logical_id)}"
        lines: list[str] = []
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
            lines += [e["message"] for e in page["events"]]
        return lines

    def invoke(self, logical_id: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Invoke one of the stack's functions through the emulator's Lambda API, as a schedule would."""
        name = self.function_name(logical_id)
        lam = self.client("lambda")
        reply = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
        result: dict[str, Any] = json.loads(reply["Payload"].read() or b"{}")
        assert "FunctionError" not in reply, result
        return result


def _running_stack() -> Stack | None:
    runtime = STATE_DIR / "runtime.json"
    if not runtime.exists():
        return None
    data = json.loads(runtime.read_text())
    try:
        # A minute: the upload function's first call after a deploy can take ~20 s on the emulator.
        with urllib.request.urlopen(data["api_url"] + "/health", timeout=60) as resp:
            if resp.status != 200:
                return None
    except (urllib.error.URLError, OSError):
        return None
    return Stack(data["api_url"], data["parameters"], STATE_DIR / "mail", None, data["endpoint"], data["stack"])


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = _running_stack()
    if running is not None:
        yield running
        return
    # what one run leaves (accounts per address and hour, tombstones, rate records) never meets the next
    with fresh_database("vid2mp3_e2e") as database_url:
        yield from _own_stack(database_url)


def _own_stack(database_url: str) -> Iterator[Stack]:
    # One warm execution environment per function (infra/warmup.py): the tier's first requests are not
    # cold starts, and starting a full pool would only cost the tier time.
    local = LocalRun(environ={"LOCAL_WARM_POOL": "1", **os.environ, "AWS_ACCESS_KEY_ID": "test",
                              "AWS_SECRET_ACCESS_KEY": "test", "DATABASE_URL": database_url},
                     port=procs.free_port())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        api_url = local.start(say=lambda line: None)
        yield Stack(api_url, dict(local.parameters), STATE_DIR / "mail", local, local.emulator.endpoint,
                    local.stack_name)
    finally:
        local.stop()


@pytest.fixture(scope="session", autouse=True)
def within_aws_payload_limits() -> Iterator[None]:
    """At the end of the tier: no request or response it sent through the API crossed what Lambda takes
    (6 MB, with the body base64-encoded): everything it did works on AWS too."""
    yield
    from tests.support.api import TRAFFIC
    from vid2mp3.limits import LAMBDA_MAX_REQUEST_BYTES, LAMBDA_MAX_RESPONSE_BYTES

    def as_event(raw: int) -> int:  # base64, plus the rest of the event
        return 4 * -(-raw // 3) + 16 * 1024

    size, what = TRAFFIC.largest_request
    assert as_event(size) <= LAMBDA_MAX_REQUEST_BYTES, f"a request of {size} bytes ({what}) would fail on AWS"
    size, what = TRAFFIC.largest_response
    assert as_event(size) <= LAMBDA_MAX_RESPONSE_BYTES, f"a response of {size} bytes ({what}) would fail on AWS"


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.api_url


@pytest.fixture(scope="session")
def jwt_secret(stack: Stack) -> str:
    return stack.parameters["JwtSecret"]
