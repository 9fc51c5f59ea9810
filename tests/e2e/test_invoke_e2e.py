"""Every function with every sample event, locally from the built artifact and remotely through the
emulator's Lambda API; and `make invoke` converting a stored video, as the README's developer loop."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra import invoke, sample_events, smoke
from infra.local import STATE_DIR
from infra.template_model import TEMPLATE, load_template
from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
# Enumerated at collection time (any key will do for the names); each test makes its event for the stack.
SAMPLES = [(s.function, s.name) for s in sample_events.samples(load_template(TEMPLATE), {}, "k" * 32)]


def _sample(stack: Stack, function: str, name: str) -> dict[str, Any]:
    samples = sample_events.samples(load_template(TEMPLATE), stack.parameters, stack.parameters["JwtSecret"])
    (sample,) = [s for s in samples if (s.function, s.name) == (function, name)]
    return sample.event


def _check_result(function: str, name: str, payload: bytes, function_error: bool, logs: str,
                  method: str | None = None) -> None:
    problem = sample_events.result_problem(payload, function_error, method)
    assert problem is None, f"{function} {name}: {problem}\n{logs[-3000:]}"


@pytest.mark.parametrize(("function", "name"), SAMPLES, ids=[f"{f}-{n}" for f, n in SAMPLES])
def test_each_sample_event_passes_through_its_function_locally(stack: Stack, function: str, name: str) -> None:
    built = STATE_DIR / "build" / "template.yaml"
    spec = invoke.function_spec(load_template(built), function, built.parent, stack.parameters)
    sample = _sample(stack, function, name)
    with tempfile.TemporaryFile("w+") as log:
        outcome = invoke.run_local(spec, json.dumps(sample).encode(), invoke.apply_env_vars(spec, {}, log), log)
        log.seek(0)
        logs = log.read()
    _check_result(function, name, outcome.payload, outcome.function_error, logs, sample.get("httpMethod"))
    assert f"Memory Size: {spec.memory_mb} MB" in logs


@pytest.mark.parametrize(("function", "name"), SAMPLES, ids=[f"{f}-{n}" for f, n in SAMPLES])
def test_each_sample_event_passes_through_the_deployed_function(stack: Stack, function: str, name: str,
                                                                tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    sample = _sample(stack, function, name)
    event.write_text(json.dumps(sample))
    result = subprocess.run([sys.executable, "-m", "infra", "invoke", function, "--remote", "-e", str(event)],
                            capture_output=True, cwd=ROOT, timeout=300)
    assert result.returncode in (0, 1), result.stderr.decode()[-2000:]
    _check_result(function, name, result.stdout, result.returncode == 1, result.stderr.decode(),
                  sample.get("httpMethod"))


def test_a_refused_token_is_a_function_error_remotely_too(stack: Stack, tmp_path: Path) -> None:
    event = _sample(stack, "AuthorizerFunction", sample_events.TOKEN_EVENT)
    event["authorizationToken"] = "Bearer not.a.token"
    (tmp_path / "event.json").write_text(json.dumps(event))
    for extra in ([], ["--remote"]):
        result = subprocess.run([sys.executable, "-m", "infra", "invoke", "AuthorizerFunction", "-e",
                                 str(tmp_path / "event.json"), *extra], capture_output=True, text=True, cwd=ROOT,
                                timeout=300)
        assert result.returncode == 1, result.stderr
        assert json.loads(result.stdout)["errorMessage"] == "Unauthorized"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of H.264/AAC in MP4, made with the built layer's ffmpeg."""
    ffmpeg = STATE_DIR / "build" / "layers" / "ffmpeg" / "bin" / "ffmpeg"
    path = tmp_path_factory.mktemp("media") / "holiday.mp4"
    subprocess.run([str(ffmpeg), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libx264", "-c:a", "aac",
                    "-shortest", str(path)], check=True, timeout=120)
    return path


def test_make_invoke_converts_a_stored_video(stack: Stack, video: Path, tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "infra", "generate-event", "ConvertFunction", "--video", str(video)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert made.returncode == 0, made.stderr
    event = json.loads(made.stdout)
    ((_key, (message,)),) = event["rmqMessagesByQueue"].items()
    job_id = json.loads(base64.b64decode(message["data"]))["job_id"]
    (tmp_path / "convert.json").write_text(made.stdout)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    result = subprocess.run(["make", "--no-print-directory", "invoke", "FN=ConvertFunction",
                             f"EVENT={tmp_path / 'convert.json'}"], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"done": 1}
    with psycopg.connect(stack.parameters["DatabaseUrl"]) as conn:
        status, mp3_size = conn.execute("SELECT status, mp3_size FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert status == "done" and mp3_size > 10_000


def test_the_smoke_script_converts_through_a_deployed_api(stack: Stack, video: Path) -> None:
    """infra/smoke.py, which the Kubernetes CI job runs against the cluster, against this stack."""
    lines: list[str] = []
    mp3 = smoke.run(stack.api_url, video, timeout_s=240, say=lines.append)
    assert len(mp3) > 10_000 and lines[-1].startswith("downloaded")
