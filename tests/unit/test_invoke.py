"""`python -m infra invoke` locally: Lambda's sandbox, limits and reporting, on small functions of our own.

Each test writes a template and a function in a temp directory and runs the real command (a clean
interpreter per invocation, as for the project's functions); the project's functions are invoked with
every sample event in tests/e2e/test_invoke_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra import invoke

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
Parameters:
  Greeting: {Type: String, Default: hello}
  Secret: {Type: String}
Globals:
  Function:
    Runtime: python3.11
    Timeout: 5
    MemorySize: 128
    Layers: [!Ref ToolsLayer]
    Environment:
      Variables:
        GREETING: !Ref Greeting
        SECRET: !Ref Secret
        REGION_SEEN: !Sub "${AWS::Region}"
Resources:
  ToolsLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/tools}
  ExtraLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/extra}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn
      Handler: app.handler
      Layers: [!Ref ExtraLayer]
      Environment: {Variables: {ONLY_FN: "yes"}}
  Slow:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/fn, Handler: app.slow, Timeout: 1}
  Hungry:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/fn, Handler: app.hungry, MemorySize: 128, Timeout: 30}
  Failing:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/fn, Handler: app.failing}
  Bucket:
    Type: AWS::S3::Bucket
  WithBucket:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn
      Handler: app.bucket
      Environment: {Variables: {BUCKET: !Ref Bucket, BUCKET_ARN: !GetAtt Bucket.Arn}}
"""

APP = '''
import json, os, shutil, subprocess, sys, time

def handler(event, context):
    print("a print is a log line")
    import toolmod  # from the layers' python/ directories, merged
    return {
        "event": event,
        "env": {k: os.environ.get(k) for k in ("GREETING", "SECRET", "ONLY_FN", "REGION_SEEN",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "DEVELOPER_VAR")},
        "tool": subprocess.run(["tool"], capture_output=True, text=True).stdout.strip(),
        "toolmod": toolmod.WHO,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "cwd": os.getcwd() == os.environ["LAMBDA_TASK_ROOT"],
        "site": [p for p in sys.path if "site-packages" in p and ".venv" in p],
    }

def slow(event, context):
    time.sleep(30)

def hungry(event, context):
    # A child process holding the memory: Lambda counts the whole sandbox, not just the handler.
    subprocess.run([sys.executable, "-c", "b = bytearray(300 * 1024 * 1024); import time; time.sleep(20)"])

def bucket(event, context):
    return [os.environ["BUCKET"], os.environ["BUCKET_ARN"]]

def failing(event, context):
    raise ValueError("no such thing")
'''


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    fn = tmp_path / "functions" / "fn"
    fn.mkdir(parents=True)
    (fn / "app.py").write_text(APP)
    tools = tmp_path / "layers" / "tools"
    (tools / "bin").mkdir(parents=True)
    (tools / "bin" / "tool").write_text("#!/bin/sh\necho from-tools-layer\n")
    (tools / "bin" / "tool").chmod(0o755)
    (tools / "python").mkdir()
    (tools / "python" / "toolmod.py").write_text("WHO = 'tools'\n")
    extra = tmp_path / "layers" / "extra" / "python"
    extra.mkdir(parents=True)
    (extra / "toolmod.py").write_text("WHO = 'extra'\n")  # a later layer replaces an earlier file
    return tmp_path


def run(project: Path, *args: str, event: object = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "infra", "invoke", *args, "-t", str(project / "template.yaml")]
    if event is not None:
        (project / "event.json").write_text(json.dumps(event))
        cmd += ["-e", str(project / "event.json")]
    env = {"PATH": "/usr/bin:/bin", "DEVELOPER_VAR": "leaks?", "HOME": str(project)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_runs_the_handler_in_lambdas_sandbox(project: Path) -> None:
    result = run(project, "Fn", "--parameter-overrides", "Secret=s3cret", "Greeting=hi", event={"a": 1})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["event"] == {"a": 1}
    assert out["env"] == {"GREETING": "hi", "SECRET": "s3cret", "ONLY_FN": "yes", "REGION_SEEN": "us-east-1",
                          "AWS_LAMBDA_FUNCTION_NAME": "Fn", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                          "DEVELOPER_VAR": None}
    assert out["tool"] == "from-tools-layer"  # the layer's bin/ is on PATH
    assert out["toolmod"] == "extra"
    assert 0 < out["remaining_ms"] <= 5000
    assert out["cwd"] is True and out["site"] == []
    assert "a print is a log line" in result.stderr and "a print" not in result.stdout
    assert f"START RequestId: {out['request_id']}" in result.stderr
    assert "REPORT RequestId:" in result.stderr and "Memory Size: 128 MB" in result.stderr


def test_sam_style_overrides_and_env_vars_file(project: Path) -> None:
    (project / "env.json").write_text(json.dumps({"Parameters": {"GREETING": "from-file", "NOT_DECLARED": "x"},
                                                   "Fn": {"ONLY_FN": "overridden"}}))
    result = run(project, "Fn", "--parameter-overrides", "ParameterKey=Secret,ParameterValue=two words",
                 "-n", str(project / "env.json"))
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["env"]
    assert (env["SECRET"], env["GREETING"], env["ONLY_FN"]) == ("two words", "from-file", "overridden")
    assert "NOT_DECLARED is not declared for Fn" in result.stderr


def test_a_missing_parameter_is_one_clear_line(project: Path) -> None:
    result = run(project, "Fn")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Fn: environment variable SECRET: parameter Secret has no value; pass --parameter-overrides "
        "Secret=... (or start `make run`, whose values are used)"]


def test_an_unknown_function_names_the_ones_there_are(project: Path) -> None:
    result = run(project, "Nope", "--parameter-overrides", "Secret=x")
    assert result.returncode == 2
    assert "no function 'Nope' in the template (functions: Fn, Slow, Hungry, Failing, WithBucket)" in result.stderr


def test_resources_resolve_to_their_logical_id_and_the_rest_needs_env_vars(project: Path) -> None:
    result = run(project, "WithBucket", "--parameter-overrides", "Secret=x")
    assert result.returncode == 2
    assert "BUCKET_ARN: cannot resolve" in result.stderr and "set it with --env-vars" in result.stderr
    (project / "env.json").write_text(json.dumps({"WithBucket": {"BUCKET_ARN": "arn:aws:s3:::local"}}))
    result = run(project, "WithBucket", "--parameter-overrides", "Secret=x", "-n", str(project / "env.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["Bucket", "arn:aws:s3:::local"]


def test_timeout_kills_and_reports_as_lambda(project: Path) -> None:
    result = run(project, "Slow", "--parameter-overrides", "Secret=x")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    assert "Task timed out after 1.00 seconds" in result.stderr
    assert "Status: timeout" in result.stderr


def test_memory_size_counts_the_whole_process_tree(project: Path) -> None:
    result = run(project, "Hungry", "--parameter-overrides", "Secret=x")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["errorType"] == "Runtime.OutOfMemory"
    assert "Error Type: Runtime.OutOfMemory" in result.stderr
    used = int(result.stderr.split("Max Memory Used: ")[1].split(" MB")[0])
    assert used > 128


def test_a_function_error_is_lambdas_error_payload_and_exit_1(project: Path) -> None:
    result = run(project, "Failing", "--parameter-overrides", "Secret=x")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "no such thing")
    assert any("failing" in line for line in payload["stackTrace"])
    assert "[ERROR] ValueError: no such thing" in result.stderr


def test_the_built_template_is_required(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "infra", "invoke", "Fn", "-t", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "does not exist: build first" in result.stderr


def test_parameter_overrides_parsing() -> None:
    assert invoke.parse_parameter_overrides(["A=1", "B='x y' C=", "ParameterKey=D,ParameterValue=4=4"]) == {
        "A": "1", "B": "x y", "C": "", "D": "4=4"}
    with pytest.raises(invoke.InvokeError):
        invoke.parse_parameter_overrides(["novalue"])


def test_layers_merge_in_order_without_copying(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for layer, name in ((one, "a"), (two, "b")):
        (layer / "python" / "pkg").mkdir(parents=True)
        (layer / "python" / "pkg" / f"{name}.py").write_text(name)
        (layer / "python" / "same.py").write_text(name)
    (one / "bin").mkdir()
    (one / "bin" / "tool").write_text("x")
    opt = tmp_path / "opt"
    invoke.merge_layers([one, two], opt)
    assert sorted(p.name for p in (opt / "python" / "pkg").iterdir()) == ["a.py", "b.py"]
    assert (opt / "python" / "same.py").read_text() == "b"
    assert (opt / "bin").is_symlink()


def test_binaries_find_ffmpeg_through_the_sandbox_path(tmp_path: Path) -> None:
    """vid2mp3.media.binaries looks in /opt/bin, then PATH: in the sandbox /opt/bin is on PATH."""
    from vid2mp3.media.binaries import find_ffmpeg

    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "ffmpeg").write_text(textwrap.dedent("#!/bin/sh\n"))
    (layer / "bin" / "ffmpeg").chmod(0o755)
    sandbox = tmp_path / "sandbox"
    invoke.merge_layers([layer], sandbox / "opt")
    spec = invoke.FunctionSpec("Fn", tmp_path, "app.handler", "python3.11", 128, 3, [layer], {})
    env = invoke.lambda_environment(spec, {}, sandbox)
    assert find_ffmpeg(None, env, opt_dir=str(tmp_path / "no-opt")) == str(sandbox / "opt" / "bin" / "ffmpeg")
