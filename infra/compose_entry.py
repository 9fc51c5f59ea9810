"""The app container of compose.yaml: migrate, build, deploy to the emulator, then run the event-source bridge.

    python -m infra.compose_entry [--stack vid2mp3] [--no-bridge]

Where `make run` (infra.local) starts every service itself on loopback, here each one is a container and
is named by the environment:

    AWS_ENDPOINT_URL      the emulator, as this container reaches it (http://emulator:4566)
    PUBLIC_EMULATOR_URL   the emulator, as your machine reaches it (http://localhost:4566): the API URL printed
                          and the links in emails are built on it. Default: AWS_ENDPOINT_URL.
    DATABASE_URL, MONGODB_URI, RABBITMQ_URL, SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_STARTTLS,
    MAIL_FROM, JWT_SECRET, JWT_TTL_SECONDS, MAX_UPLOAD_BYTES, PUBLIC_BASE_URL
                          as everywhere (vid2mp3.settings). The same values are handed to the functions as
                          template parameters, so they must name hosts the functions can resolve too: with
                          the emulator's Docker executor the functions run in containers on the compose
                          network, where the compose service names (postgres, mongo, ...) resolve.

The sequence: wait for the emulator, apply the migrations, build the artifacts, deploy the stack (twice on a
fresh emulator: the email links need the API's id, known only once it exists), start one warm-up
invocation (the emulator pulls the Lambda runtime image on first use, better now than during the first
request), start the bridge, print the API URL and touch READY_FILE (the container's health check). SIGTERM
stops the bridge gracefully.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import psycopg
from botocore.config import Config

from infra import build as builder
from infra import deploy as deployer
from infra.aws import CREDENTIALS, REGION
from infra.bridge import (
    READ_TIMEOUT_MARGIN_S,
    Bridge,
    BridgeError,
    configure_logging,
    lambda_client,
    mappings_for_stack,
)
from infra.local import PASSTHROUGH
from infra.local import jwt_secret as local_jwt_secret
from infra.services import ServiceError
from vid2mp3.db.migrate import apply_migrations
from vid2mp3.errors import ConfigError
from vid2mp3.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ROOT / ".vid2mp3"
DEFAULT_READY_FILE = Path("/tmp/vid2mp3-ready")  # noqa: S108 - inside the app container
HEALTH_PATHS = ("/_ministack/health", "/_localstack/health")


class EntryError(Exception):
    """Something the user has to fix; one line."""


def say(line: str) -> None:
    print(f"vid2mp3: {line}", flush=True)


def jwt_secret(environ: Mapping[str, str], state_dir: Path) -> str:
    """JWT_SECRET when set; else a generated development secret kept in `state_dir` (with a warning)."""
    try:
        secret = local_jwt_secret(state_dir, environ)
    except ServiceError as exc:
        raise EntryError(str(exc)) from None
    if not environ.get("JWT_SECRET"):
        say(f"WARNING: JWT_SECRET is not set; using a generated development secret kept in {state_dir}. "
            "Set JWT_SECRET (e.g. in .env) for anything but local development.")
    return secret


def parameters(environ: Mapping[str, str], secret: str) -> dict[str, str]:
    """The template parameters for the functions, from the validated settings and the pass-through variables."""
    settings = load_settings(environ)  # ConfigError names the variable
    return {
        "DatabaseUrl": settings.database_url,
        "MongodbUri": settings.mongodb_uri,
        "RabbitmqUrl": settings.rabbitmq_url,
        "SmtpHost": settings.smtp_host,
        "SmtpPort": str(settings.smtp_port),
        "JwtSecret": secret,
        **{param: environ[var] for var, param in PASSTHROUGH.items() if environ.get(var)},
    }


def public_stage_url(public_endpoint: str, outputs: Mapping[str, str]) -> str:
    return deployer.stage_url(public_endpoint.rstrip("/"), dict(outputs))


def wait_until(check: Callable[[], bool], what: str, timeout_s: float, interval_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise EntryError(f"{what} did not become ready within {timeout_s:.0f} s")
        time.sleep(interval_s)


def emulator_ready(endpoint: str) -> bool:
    for path in HEALTH_PATHS:
        try:
            with urllib.request.urlopen(endpoint.rstrip("/") + path, timeout=3) as resp:  # noqa: S310
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            continue
    return False


def migrate(database_url: str, timeout_s: float = 120) -> list[str]:
    """Apply the migrations, waiting for the database to accept connections first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return apply_migrations(database_url)
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise EntryError(f"DATABASE_URL: cannot connect ({' '.join(str(exc).split())})") from None
            time.sleep(2)


def _stack_outputs(cfn: Any, stack: str) -> dict[str, str] | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except botocore.exceptions.ClientError:
        return None
    if not stacks or not str(stacks[0].get("StackStatus", "")).endswith("_COMPLETE"):
        return None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def deploy_stack(endpoint: str, public_endpoint: str, stack: str, params: dict[str, str], build_dir: Path,
                 public_base_url: str | None) -> str:
    """Build and deploy; returns the public stage URL. PublicBaseUrl is the public stage URL unless given."""
    started = time.monotonic()
    built = builder.build(build_dir)
    say(f"built the functions and layers in {time.monotonic() - started:.0f} s")
    cache = build_dir / "build" / "zips"
    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    existing = _stack_outputs(cfn, stack)
    known = public_base_url or (public_stage_url(public_endpoint, existing) if existing and "ApiId" in existing
                                else "")
    outputs = deployer.deploy(built, {**params, "PublicBaseUrl": known}, endpoint=endpoint, stack_name=stack,
                              region=REGION, cache=cache)
    url = public_stage_url(public_endpoint, outputs)
    if not known:  # a fresh stack: the links in emails need the API id, known only now
        deployer.deploy(built, {**params, "PublicBaseUrl": url}, endpoint=endpoint, stack_name=stack,
                        region=REGION, cache=cache)
    say(f"deployed stack {stack} to {endpoint} in {time.monotonic() - started:.0f} s")
    return url


def warm_up(endpoint: str, stack: str) -> None:
    """Invoke the authorizer once with a token it refuses: the emulator pulls and starts the runtime now."""
    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name=REGION,
                       config=Config(read_timeout=600, retries={"total_max_attempts": 1}))
    try:
        name = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="AuthorizerFunction")[
            "StackResourceDetail"]["PhysicalResourceId"]
        started = time.monotonic()
        lam.invoke(FunctionName=name, Payload=json.dumps({
            "type": "TOKEN", "authorizationToken": "Bearer warm.up.token",
            "methodArn": "arn:aws:execute-api:us-east-1:000000000000:warmup/v1/GET/health",
        }).encode())
        say(f"Lambda runtime warm ({time.monotonic() - started:.0f} s)")
    except Exception as exc:  # only an optimisation: the first real request pays the cold start instead
        say(f"warm-up skipped ({type(exc).__name__}: {exc})")


def _bridge_logger() -> logging.Logger:
    return configure_logging()


def start_bridge(endpoint: str, stack: str, rabbitmq_url: str) -> Bridge:
    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    mappings = mappings_for_stack(cfn, stack)
    # Bridge.start() raises the read timeout above the longest function timeout.
    client = lambda_client(endpoint, read_timeout_s=READ_TIMEOUT_MARGIN_S, region=REGION,
                           credentials={k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    bridge = Bridge(rabbitmq_url, client, mappings, logger=_bridge_logger())
    bridge.start()
    say("bridge: " + (", ".join(f"{m.source.function} <- {m.source.queue}" for m in mappings) or "no MQ events"))
    return bridge


def start(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, Bridge | None]:
    """Everything up to a running bridge; returns the public API URL and the bridge (None with --no-bridge)."""
    endpoint = environ.get("AWS_ENDPOINT_URL", "").rstrip("/")
    if not endpoint:
        raise EntryError("AWS_ENDPOINT_URL: not set (the emulator, e.g. http://emulator:4566)")
    public_endpoint = environ.get("PUBLIC_EMULATOR_URL", "").rstrip("/") or endpoint
    params = parameters(environ, jwt_secret(environ, args.state_dir))
    # Large MP3 downloads redirect to presigned links of the emulator's S3: signed for the address
    # your machine reaches, not the one the function containers use.
    params.setdefault("ExportPublicEndpointUrl", public_endpoint)
    say(f"waiting for the emulator at {endpoint} ...")
    wait_until(lambda: emulator_ready(endpoint), "the emulator", timeout_s=300)
    applied = migrate(params["DatabaseUrl"])
    say(f"migrations: {', '.join(applied) if applied else 'up to date'}")
    api_url = deploy_stack(endpoint, public_endpoint, args.stack, params, args.build_dir,
                           environ.get("PUBLIC_BASE_URL") or None)
    warm_up(endpoint, args.stack)
    bridge = None if args.no_bridge else start_bridge(endpoint, args.stack, params["RabbitmqUrl"])
    return api_url, bridge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.compose_entry", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stack", default=os.environ.get("STACK_NAME", deployer.STACK_NAME))
    parser.add_argument("--build-dir", type=Path, default=Path(os.environ.get("BUILD_DIR", DEFAULT_STATE_DIR)),
                        help="where the artifacts are built (as `python -m infra.build --state-dir`)")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("STATE_DIR", DEFAULT_STATE_DIR)),
                        help="where a generated JWT secret is kept")
    parser.add_argument("--ready-file", type=Path, default=Path(os.environ.get("READY_FILE", DEFAULT_READY_FILE)))
    parser.add_argument("--no-bridge", action="store_true", help="deploy, print the API URL and exit")
    args = parser.parse_args(argv)

    for key, value in CREDENTIALS.items():  # an emulator takes any credentials
        os.environ.setdefault(key, value)
    stop = threading.Event()
    starting = True

    def on_signal(*_: object) -> None:
        stop.set()
        if starting:  # `docker compose stop` during the start: give up now rather than be killed later
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args.ready_file.unlink(missing_ok=True)
    try:
        api_url, bridge = start(args, dict(os.environ))
        starting = False
    except (EntryError, ConfigError, BridgeError) as exc:
        print(f"vid2mp3: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    say(f"Page: {api_url}/  (open it in a browser)")
    say(f"API: {api_url}")
    say(f"try: curl {api_url}/health")
    args.ready_file.write_text(api_url + "\n")
    if bridge is None:
        return 0
    try:
        while not stop.wait(1.0):
            if not bridge.alive():
                print("vid2mp3: error: a bridge consumer stopped", file=sys.stderr, flush=True)
                return 1
        say("stopping the bridge ...")
        bridge.stop()
        return 0
    finally:
        args.ready_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
