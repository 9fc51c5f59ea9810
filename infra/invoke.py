"""`python -m infra invoke`: run one function once, as `sam local invoke` does, without Docker.

Local (the default): the function's handler runs from the **built** artifact (`python -m infra build`)
in a clean interpreter (`python -I -S -B`: the standard library, the function's code and its layers,
nothing of the developer's venv), in a sandbox laid out as Lambda's:

    <sandbox>/task   a copy of the function's built code         (LAMBDA_TASK_ROOT, /var/task on Lambda)
    <sandbox>/opt    every layer of the function, merged in order (/opt on Lambda): python/ on sys.path,
                     bin/ on PATH (so vid2mp3.media.binaries finds ffmpeg as Lambda would in /opt/bin)
    <sandbox>/tmp    TMPDIR                                      (/tmp on Lambda)

with the template's environment (Globals merged with the function's, parameters resolved), the
variables Lambda sets (AWS_LAMBDA_FUNCTION_NAME, ..._MEMORY_SIZE, LAMBDA_TASK_ROOT, _HANDLER, ...), and
the function's limits: past its Timeout the process group is killed and reported as Lambda does ("Task
timed out after N.00 seconds"); past its MemorySize (the resident memory of the function's whole
process tree, ffmpeg included, as Lambda's sandbox counts it) it is killed and reported as
Runtime.OutOfMemory. The result is printed on stdout, the function's logs (and Lambda's START / END /
REPORT lines) on stderr; a function error exits 1.

Remote (`--remote`): the deployed function of a running `make run` (or of AWS_ENDPOINT_URL when set,
as localstack-client reads it) through the emulator's Lambda API, with a boto3 client made by
localstack-client.

Parameters, lowest precedence first: the template's defaults, the running `make run`'s (so a local
invoke talks to the same services as the stack), `--parameter-overrides`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from infra.aws import CREDENTIALS, REGION
from infra.build import RUNTIME_DIR
from infra.template_model import functions, load_template, parameter_defaults

RUNTIME_SCRIPT = Path(__file__).resolve().parent / "lambda_runtime.py"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MEMORY_POLL_S = 0.05
# Lambda's PATH for python3.11, with the sandbox's /opt/bin in place of /opt/bin.
LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:{opt}/bin"
PSEUDO_PARAMETERS = {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::StackName": "vid2mp3",
                     "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


class InvokeError(Exception):
    """A problem with the invocation itself (not the function's): one line for the user."""


# --------------------------------------------------------------------------------------------------
# The function as the template declares it


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    layers: list[Path]
    environment: dict[str, str]
    unresolved: dict[str, str] = field(default_factory=dict)  # variable -> why it has no value
    runtime_sdk: Path | None = None  # what Lambda's runtime provides itself (boto3), as /var/runtime


def parse_parameter_overrides(values: Sequence[str]) -> dict[str, str]:
    """`K=V` pairs, or SAM's `ParameterKey=K,ParameterValue=V`; several per argument, space-separated."""
    out: dict[str, str] = {}
    for value in values:
        if value.lstrip().startswith("ParameterKey="):
            for key, val in re.findall(r"ParameterKey=([^,\s]+),ParameterValue=(.*?)(?=\s+ParameterKey=|$)", value):
                out[key] = val
            continue
        for item in shlex.split(value):  # "A=1 B='two words'": several in one argument, as SAM takes them
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise InvokeError(f"--parameter-overrides: expected KEY=VALUE, got {item!r}")
            out[key] = val
    return out


def _merged(globals_props: Mapping[str, Any], props: Mapping[str, Any], key: str, default: Any) -> Any:
    return props.get(key, globals_props.get(key, default))


def _resolve(value: Any, params: Mapping[str, Any], where: str, resources: Mapping[str, Any] | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name in params:
            if params[name] is None:
                raise InvokeError(f"{where}: parameter {name} has no value; pass --parameter-overrides {name}=..."
                                  " (or start `make run`, whose values are used)")
            return str(params[name])
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if resources and name in resources:
            return str(name)  # a resource of the stack: its logical id, as `sam local invoke` resolves it
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}!]+)\}", lambda m: _resolve({"Ref": m.group(1)}, params, where, resources),
                      value["Fn::Sub"])
    raise InvokeError(f"{where}: cannot resolve {json.dumps(value)} locally; set it with --env-vars")


def function_spec(template: Mapping[str, Any], logical_id: str, template_dir: Path,
                  parameters: Mapping[str, Any]) -> FunctionSpec:
    funcs = functions(dict(template))
    if logical_id not in funcs:
        raise InvokeError(f"no function {logical_id!r} in the template (functions: {', '.join(funcs)})")
    params = {**parameter_defaults(dict(template)), **parameters}
    globals_props = ((template.get("Globals") or {}).get("Function")) or {}
    props = funcs[logical_id].get("Properties") or {}
    variables: dict[str, Any] = {
        **((globals_props.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    resources = template.get("Resources") or {}
    environment: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for key, value in variables.items():
        try:
            environment[key] = _resolve(value, params, f"{logical_id}: environment variable {key}", resources)
        except InvokeError as exc:
            unresolved[key] = str(exc)  # an error unless --env-vars gives it a value
    return FunctionSpec(
        logical_id=logical_id,
        code_dir=(template_dir / str(props["CodeUri"])).resolve(),
        handler=str(props["Handler"]),
        runtime=str(_merged(globals_props, props, "Runtime", "python3.11")),
        memory_mb=int(_resolve(_merged(globals_props, props, "MemorySize", 128), params, logical_id)),
        timeout_s=int(_resolve(_merged(globals_props, props, "Timeout", 3), params, logical_id)),
        layers=function_layers(template, logical_id, template_dir),
        environment=environment,
        unresolved=unresolved,
        runtime_sdk=template_dir / RUNTIME_DIR if (template_dir / RUNTIME_DIR).is_dir() else None,
    )


def function_layers(template: Mapping[str, Any], logical_id: str, template_dir: Path) -> list[Path]:
    """The function's layer directories in Lambda's order (SAM's Globals: lists are additive, the
    global layers first)."""
    globals_props = ((template.get("Globals") or {}).get("Function")) or {}
    props = (template.get("Resources") or {})[logical_id].get("Properties") or {}
    resources = template.get("Resources") or {}
    layers: list[Path] = []
    for ref in [*(globals_props.get("Layers") or []), *(props.get("Layers") or [])]:
        name = ref.get("Ref") if isinstance(ref, dict) else None
        layer = resources.get(name or "", {})
        if layer.get("Type") != "AWS::Serverless::LayerVersion":
            raise InvokeError(f"{logical_id}: layer {json.dumps(ref)} is not a layer of this template")
        layers.append((template_dir / str(layer["Properties"]["ContentUri"])).resolve())
    return layers


def apply_env_vars(spec: FunctionSpec, env_vars: Mapping[str, Any], warn: IO[str]) -> dict[str, str]:
    """SAM's --env-vars file: {"Parameters": {...}} for every function, {"<LogicalId>": {...}} for one.

    As in SAM, only variables the template declares for the function are overridden.
    """
    environment = dict(spec.environment)
    missing = dict(spec.unresolved)
    for scope in ("Parameters", spec.logical_id):
        for key, value in (env_vars.get(scope) or {}).items():
            if key in environment or key in missing:
                environment[key] = "" if value is None else str(value)
                missing.pop(key, None)
            else:
                print(f"env-vars: {key} is not declared for {spec.logical_id} in the template; ignored", file=warn)
    if missing:
        raise InvokeError(next(iter(missing.values())))
    return environment


# --------------------------------------------------------------------------------------------------
# The sandbox


def merge_layers(layers: Sequence[Path], opt: Path) -> None:
    """Lay the layers out as Lambda extracts them into /opt: in order, a later file replacing an
    earlier one. Symlinks to the built layers (copying the 150 MB ffmpeg layer per invoke would cost
    more than the invocation); a directory two layers share becomes a real one."""
    opt.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        if not layer.is_dir():
            raise InvokeError(f"layer {layer} is not built (run `python -m infra build`)")
        _link_tree(layer, opt)


def _link_tree(source: Path, target: Path) -> None:
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".build-key"):
            continue
        dest = target / entry.name
        if dest.is_symlink() and dest.is_dir() and entry.is_dir():
            previous = dest.resolve()
            dest.unlink()
            dest.mkdir()
            _link_tree(previous, dest)
            _link_tree(entry, dest)
        elif dest.is_dir() and not dest.is_symlink() and entry.is_dir():
            _link_tree(entry, dest)
        else:
            if dest.is_symlink() or dest.exists():
                dest.unlink()
            dest.symlink_to(entry.resolve())


def lambda_environment(spec: FunctionSpec, environment: Mapping[str, str], sandbox: Path) -> dict[str, str]:
    """The function's environment: the template's variables and the ones Lambda sets."""
    creds = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
             if os.environ.get(k)} or {k: v for k, v in CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"}
    opt = sandbox / "opt"
    return {
        # The template's variables first: Lambda reserves the names below, and sets them itself.
        **environment,
        **creds,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(sandbox / "task"),
        "LAMBDA_RUNTIME_DIR": str(RUNTIME_SCRIPT.parent),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": LAMBDA_PATH.format(opt=opt),
        "LD_LIBRARY_PATH": f"{opt}/lib",
        "TMPDIR": str(sandbox / "tmp"),
        "HOME": str(sandbox / "tmp"),
        "_VID2MP3_OPT": str(opt),
        **({"_VID2MP3_RUNTIME_SDK": str(spec.runtime_sdk)} if spec.runtime_sdk is not None else {}),
    }


# --------------------------------------------------------------------------------------------------
# Running it


@dataclass
class Outcome:
    payload: bytes  # the result, or Lambda's error payload
    function_error: bool
    duration_ms: float
    max_memory_mb: int
    status: str = "success"  # or timeout / out_of_memory / error


def _group_rss_bytes(pgid: int) -> int:
    """The resident memory of every process in the group (the function and what it started)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) != pgid:  # field 5, pgrp
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError):
            continue
    return total


def run_local(spec: FunctionSpec, event: bytes, environment: Mapping[str, str], log: IO[str],
              *, python: str = sys.executable) -> Outcome:
    request_id = str(uuid.uuid4())
    sandbox = Path(tempfile.mkdtemp(prefix="vid2mp3-invoke-"))
    try:
        if not (spec.code_dir / spec.handler.rpartition(".")[0].replace(".", "/")).with_suffix(".py").exists():
            raise InvokeError(f"{spec.logical_id}: handler {spec.handler} not found in {spec.code_dir} "
                              "(run `python -m infra build`)")
        shutil.copytree(spec.code_dir, sandbox / "task", ignore=shutil.ignore_patterns("__pycache__"))
        merge_layers(spec.layers, sandbox / "opt")
        (sandbox / "tmp").mkdir()
        runtime = sandbox / "runtime"
        runtime.mkdir()
        (runtime / "event.json").write_bytes(event)
        result_file = runtime / "result.json"
        started = time.time()
        deadline = started + spec.timeout_s
        env = {
            **lambda_environment(spec, environment, sandbox),
            "_VID2MP3_EVENT": str(runtime / "event.json"),
            "_VID2MP3_RESULT": str(result_file),
            "_VID2MP3_REQUEST_ID": request_id,
            "_VID2MP3_DEADLINE_MS": str(int(deadline * 1000)),
        }
        print(f"START RequestId: {request_id} Version: $LATEST", file=log, flush=True)
        proc = subprocess.Popen([python, "-I", "-S", "-B", str(RUNTIME_SCRIPT)], env=env, cwd=sandbox / "task",
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        peak = 0
        status = "success"
        limit = spec.memory_mb * 1024 * 1024
        while proc.poll() is None:
            peak = max(peak, _group_rss_bytes(proc.pid))
            if peak > limit:
                status = "out_of_memory"
                break
            if time.time() >= deadline:
                status = "timeout"
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=MEMORY_POLL_S)
        _kill_group(proc)
        duration_ms = (time.time() - started) * 1000
        max_mb = max(1, round(peak / 1024 / 1024))
        if status == "timeout":
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            message = f"Task timed out after {spec.timeout_s:.2f} seconds"
            print(f"{stamp} {request_id} {message}", file=log, flush=True)
            payload = {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: {message}"}
            outcome = Outcome(json.dumps(payload).encode(), True, duration_ms, max_mb, status)
        elif status == "out_of_memory":
            payload = {"errorType": "Runtime.OutOfMemory",
                       "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}
            outcome = Outcome(json.dumps(payload).encode(), True, duration_ms, max_mb, status)
        elif result_file.exists():
            outcome = Outcome(result_file.read_bytes(), proc.returncode != 0, duration_ms, max_mb,
                              "success" if proc.returncode == 0 else "error")
        else:  # the runtime died without a word (a signal, os._exit)
            payload = {"errorType": "Runtime.ExitError",
                       "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                                       f"exit status {proc.returncode}"}
            outcome = Outcome(json.dumps(payload).encode(), True, duration_ms, max_mb, "error")
        print(f"END RequestId: {request_id}", file=log)
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Billed Duration: {int(duration_ms + 0.999)} ms\tMemory Size: {spec.memory_mb} MB\t"
                  f"Max Memory Used: {max_mb} MB")
        if status == "timeout":
            report += "\tStatus: timeout"
        elif status == "out_of_memory":
            report += "\tStatus: error\tError Type: Runtime.OutOfMemory"
        print(report, file=log, flush=True)
        return outcome
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------------
# Remote


def run_remote(logical_id: str, event: bytes, *, stack_name: str, endpoint: str | None, log: IO[str]) -> Outcome:
    """Invoke the deployed function through the emulator's Lambda API (a localstack-client session)."""
    import urllib.parse

    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from localstack_client.session import Session

    host = urllib.parse.urlsplit(endpoint).netloc if endpoint else None
    session = Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name=REGION,
                      localstack_host=host)
    started = time.time()
    try:
        cfn = session.client("cloudformation")
        resource = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        name = resource["StackResourceDetail"]["PhysicalResourceId"]
        # No client-side retry: a retried read timeout would run the function twice.
        lam = session.client("lambda", config=Config(read_timeout=960, retries={"total_max_attempts": 1}))
        response = lam.invoke(FunctionName=name, InvocationType="RequestResponse", LogType="Tail", Payload=event)
    except (ClientError, BotoCoreError) as exc:
        raise InvokeError(f"remote invoke of {logical_id} in stack {stack_name!r} failed: {exc}") from exc
    if response.get("LogResult"):
        log.write(base64.b64decode(response["LogResult"]).decode("utf-8", errors="replace"))
        log.flush()
    payload = response["Payload"].read()
    return Outcome(payload, bool(response.get("FunctionError")), (time.time() - started) * 1000, 0,
                   "error" if response.get("FunctionError") else "success")


# --------------------------------------------------------------------------------------------------
# The command


def read_event(path: str | None) -> bytes:
    """The event file's bytes (`-` for stdin); `{}` without one, as `sam local invoke --no-event`."""
    if path is None:
        return b"{}"
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        json.loads(data)
    except ValueError as exc:
        raise InvokeError(f"the event {path} is not JSON: {exc}") from exc
    return data


def local_run_state(state_dir: Path) -> dict[str, Any] | None:
    """The running `make run`'s runtime.json (endpoint, stack, parameters), if one is running."""
    path = state_dir / "runtime.json"
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    with contextlib.suppress(TypeError, ValueError):
        os.kill(int(state.get("pid", 0)), 0)  # signal 0: only asks whether it is alive
        return state
    return None


def stack_parameters(state_dir: Path, overrides: Mapping[str, str]) -> dict[str, str]:
    state = local_run_state(state_dir)
    return {**((state or {}).get("parameters") or {}), **overrides}


def add_arguments(parser: Any) -> None:
    parser.add_argument("function", metavar="FUNCTION", help="the function's logical id in the template")
    parser.add_argument("-e", "--event", help="JSON event file ('-' for stdin); default {}")
    parser.add_argument("-t", "--template", type=Path, help="built template (default .vid2mp3/build/template.yaml)")
    parser.add_argument("-n", "--env-vars", type=Path, help="JSON file of environment overrides (SAM's format)")
    parser.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="template parameters (KEY=VALUE or ParameterKey=KEY,ParameterValue=VALUE)")
    parser.add_argument("-l", "--log-file", type=Path, help="write the function's logs here instead of stderr")
    parser.add_argument("--remote", action="store_true",
                        help="invoke the deployed function of the running `make run` instead")
    parser.add_argument("--stack-name", help="stack of the deployed function (--remote; default: make run's)")


def command(args: Any, state_dir: Path) -> int:
    log: IO[str] = open(args.log_file, "a", encoding="utf-8") if args.log_file else sys.stderr  # noqa: SIM115
    try:
        event = read_event(args.event)
        if args.remote:
            state = local_run_state(state_dir) or {}
            endpoint = os.environ.get("AWS_ENDPOINT_URL") or state.get("endpoint")
            if not endpoint:
                raise InvokeError("no local run is active (start one with `make run`) and AWS_ENDPOINT_URL is unset")
            outcome = run_remote(args.function, event, stack_name=args.stack_name or state.get("stack", "vid2mp3"),
                                 endpoint=endpoint, log=log)
        else:
            template_path = args.template or state_dir / "build" / "template.yaml"
            if not template_path.exists():
                raise InvokeError(f"{template_path} does not exist: build first (`python -m infra build`, "
                                  "or `make invoke`, which builds)")
            template = load_template(template_path)
            params = stack_parameters(state_dir, parse_parameter_overrides(args.parameter_overrides))
            spec = function_spec(template, args.function, template_path.parent, params)
            env_vars = json.loads(args.env_vars.read_text()) if args.env_vars else {}
            environment = apply_env_vars(spec, env_vars, log)
            outcome = run_local(spec, event, environment, log)
    except (InvokeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if log is not sys.stderr:
            log.close()
    sys.stdout.write(outcome.payload.decode("utf-8", errors="replace") + "\n")
    sys.stdout.flush()
    return 1 if outcome.function_error else 0
