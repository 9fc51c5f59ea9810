"""What the benches share: talking to the local stack as a client does, and finding or starting it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".vid2mp3"
PASSWORD = "bench password, long enough"
MIB = 1024 * 1024


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def request(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 600) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def make_user(api: str) -> tuple[str, bytes]:
    """A new user, registered and logged in through `/auth/*`; returns the token and the login body."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    creds = json.dumps({"email": email, "password": PASSWORD}).encode()
    # From an address of its own: registrations are limited per address and hour.
    json_headers = {"Content-Type": "application/json", "Accept": "application/json",
                    "X-Forwarded-For": ".".join(str(random.randrange(1, 250)) for _ in range(4))}
    status, _, raw = request("POST", api + "/auth/register", body=creds, headers=json_headers)
    if status != 201:
        raise SystemExit(f"register failed: {status} {raw[:300]!r}")
    status, _, raw = request("POST", api + "/auth/login", body=creds, headers=json_headers)
    if status != 200:
        raise SystemExit(f"login failed: {status} {raw[:300]!r}")
    return str(json.loads(raw)["access_token"]), creds


def running_stack() -> dict[str, Any] | None:
    """The running `make run` (its .vid2mp3/runtime.json), if it answers."""
    runtime = STATE / "runtime.json"
    if not runtime.exists():
        return None
    data: dict[str, Any] = json.loads(runtime.read_text())
    try:
        status, _, _ = request("GET", data["api_url"] + "/health", timeout=10)
    except OSError:
        return None
    return data if status == 200 else None


@contextlib.contextmanager
def local_stack(*, say_line: Callable[[str], None] = say) -> Iterator[dict[str, Any]]:
    """The running `make run` when there is one, else a stack started here as `make run` starts it (its
    warm pools up before anything is measured) and stopped afterwards. Yields what runtime.json holds."""
    stack = running_stack()
    if stack is not None:
        yield stack
        return
    from infra import procs
    from infra.aws import CREDENTIALS
    from infra.local import LocalRun

    os.environ.update(CREDENTIALS)
    local = LocalRun(environ=dict(os.environ), port=procs.free_port())
    say_line("starting the local stack ...")
    try:
        api = local.start(say=say_line)
        local.warmed.wait()
        yield {"api_url": api, "endpoint": local.emulator.endpoint, "stack": local.stack_name,
               "parameters": local.parameters}
    finally:
        local.stop()


def function_log(stack: dict[str, Any], logical_id: str) -> Iterator[str]:
    """What one of the stack's functions wrote to its CloudWatch log group (the emulator's), oldest first."""
    import boto3

    from infra.aws import CREDENTIALS, REGION

    keys = {"endpoint_url": stack["endpoint"], "region_name": REGION,
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    name = boto3.client("cloudformation", **keys).describe_stack_resource(
        StackName=stack["stack"], LogicalResourceId=logical_id)["StackResourceDetail"]["PhysicalResourceId"]
    for page in boto3.client("logs", **keys).get_paginator("filter_log_events").paginate(
            logGroupName=f"/aws/lambda/{name}"):
        for event in page["events"]:
            yield str(event["message"])
