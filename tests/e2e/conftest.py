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

import pytest

from infra import procs
from infra.local import STATE_DIR, LocalRun


@dataclass(frozen=True)
class Stack:
    api_url: str
    parameters: dict[str, str]
    mail_dir: Path
    local: LocalRun | None


def _running_stack() -> Stack | None:
    runtime = STATE_DIR / "runtime.json"
    if not runtime.exists():
        return None
    data = json.loads(runtime.read_text())
    try:
        with urllib.request.urlopen(data["api_url"] + "/health", timeout=10) as resp:
            if resp.status != 200:
                return None
    except (urllib.error.URLError, OSError):
        return None
    return Stack(data["api_url"], data["parameters"], STATE_DIR / "mail", None)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = _running_stack()
    if running is not None:
        yield running
        return
    local = LocalRun(environ={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
                     port=procs.free_port())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        api_url = local.start(say=lambda line: None)
        yield Stack(api_url, dict(local.parameters), STATE_DIR / "mail", local)
    finally:
        local.stop()


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.api_url


@pytest.fixture(scope="session")
def jwt_secret(stack: Stack) -> str:
    return stack.parameters["JwtSecret"]
