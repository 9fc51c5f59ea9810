"""`make run` with bad configuration: one clear line naming the variable, no traceback, nothing left."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgresql://u:secretpw@127.0.0.1:1/x"}, "error: DATABASE_URL: cannot connect"),
        ({"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:notaport/"}, "error: RABBITMQ_URL: is not a valid AMQP URL"),
        ({"MAX_UPLOAD_BYTES": "lots"}, "error: MAX_UPLOAD_BYTES: "),
        ({"JWT_SECRET": "too-short"}, "error: JWT_SECRET: must be at least 32 bytes"),
    ],
)
def test_bad_configuration_is_one_line(env, expected):
    result = subprocess.run([sys.executable, "-m", "infra", "run"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "EMULATOR_PORT": "1", **env}, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(expected), errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "secretpw" not in result.stdout + result.stderr
