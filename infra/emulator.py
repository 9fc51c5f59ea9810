"""The local AWS emulator (MiniStack) in its own virtualenv, on loopback."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from infra import procs
from infra.aws import CREDENTIALS, REGION
from infra.services import ServiceError

REQUIREMENTS = Path(__file__).resolve().parent / "emulator-requirements.txt"
# Only what the template needs; fewer services start faster and open no extra ports.
SERVICES = "lambda,apigateway,cloudformation,s3,iam,sts,logs,secretsmanager,events"


def ensure_venv(state_dir: Path) -> Path:
    """Create or refresh .vid2mp3/emulator/venv when emulator-requirements.txt changed."""
    venv = state_dir / "emulator" / "venv"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a test run and `make run` may start at the same moment
        return _ensure_venv_locked(venv)


def _ensure_venv_locked(venv: Path) -> Path:
    marker = venv / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text() == wanted and (venv / "bin" / "ministack").exists():
        return venv
    print("setting up the emulator (MiniStack) in .vid2mp3/emulator/venv ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-qq", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True,
    )
    marker.write_text(wanted)
    return venv


class Emulator:
    """MiniStack on 127.0.0.1:`port`; its Lambda workers run as its child processes."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        if procs.port_open(self.port):
            raise ServiceError(
                "EMULATOR_PORT", f"port {self.port} is already in use; stop what runs there or choose a free port"
            )
        venv = ensure_venv(self.state_dir)
        # MiniStack extracts every function's code and layers under TMPDIR and never removes them
        # (the ffmpeg layer alone is 150 MB a copy): one directory per emulator, emptied on start and stop.
        tmp = self._tmp
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        # A clean environment: Lambda workers inherit it, and must see only what the template sets.
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", str(tmp)),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "SERVICES": SERVICES,
            "IOT_MTLS_ENABLED": "0",
            "LOG_LEVEL": "WARNING",
            # Execution environments a burst started stay for a day (not 5 minutes): the warm pools of
            # the local run (infra/warmup.py) are there for the next burst too.
            "LAMBDA_WARM_TTL_SECONDS": "86400",
            "MINISTACK_REGION": REGION,
            **CREDENTIALS,
        }
        self._proc = procs.spawn([str(venv / "bin" / "ministack")], log=self.state_dir / "logs" / "emulator.log",
                                 env=env)
        procs.wait_until(self.healthy, timeout, "the emulator")

    def healthy(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise ServiceError("emulator", "MiniStack exited during start (see .vid2mp3/logs/emulator.log)")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @property
    def _tmp(self) -> Path:
        return self.state_dir / "emulator" / f"tmp-{self.port}"

    def stop(self) -> None:
        if self._proc is not None:
            procs.stop_group(self._proc)
            self._proc = None
            shutil.rmtree(self._tmp, ignore_errors=True)
