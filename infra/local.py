"""The local run: services, emulator, build, deploy, bridge; one object the run command and the
e2e tests share. `python -m infra run` is `make run`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from infra import build as builder
from infra import deploy as deployer
from infra.aws import CREDENTIALS, REGION
from infra.bridge import BridgeError
from infra.emulator import Emulator
from infra.services import LocalServices, ResolvedServices, ServiceError
from vid2mp3.errors import ConfigError
from vid2mp3.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".vid2mp3"
DEFAULT_PORT = 4566
# How to use the command line (vid2mp3/cli) against this run; it finds .vid2mp3/api-url from the project.
CLI_USAGE = """\
Command line, in another terminal:
  .venv/bin/vid2mp3 register you@example.com, then .venv/bin/vid2mp3 convert VIDEO...   (--help for more)
  (it finds this API from the project's directory; elsewhere, set VID2MP3_API={api})"""

# Settings passed through to the functions when set in the environment (template parameter names).
PASSTHROUGH = {
    "SMTP_USERNAME": "SmtpUsername",
    "SMTP_PASSWORD": "SmtpPassword",
    "SMTP_STARTTLS": "SmtpStarttls",
    "MAIL_FROM": "MailFrom",
    "JWT_PREVIOUS_SECRET": "JwtPreviousSecret",
    "JWT_TTL_SECONDS": "JwtTtlSeconds",
    "MAX_UPLOAD_BYTES": "MaxUploadBytes",
    "UPLOAD_EXPIRY_SECONDS": "UploadExpirySeconds",
    "CORS_ALLOWED_ORIGINS": "CorsAllowedOrigins",
    "EXPORT_URL_TTL_SECONDS": "ExportUrlTtlSeconds",
    "EXPORT_PUBLIC_ENDPOINT_URL": "ExportPublicEndpointUrl",
    "KEEP_SOURCE": "KeepSource",
    "RETENTION_HOURS": "RetentionHours",
    "QUOTA_STORAGE_BYTES": "QuotaStorageBytes",
    "QUOTA_ACTIVE_JOBS": "QuotaActiveJobs",
    "QUOTA_UPLOADS_PER_HOUR": "QuotaUploadsPerHour",
    "REGISTRATIONS_PER_HOUR_PER_IP": "RegistrationsPerHourPerIp",
    "WEBHOOK_ALLOWED_HOSTS": "WebhookAllowedHosts",
}
# Locally, webhooks may go to this machine's own receivers (development, the e2e tier): the template's
# default (public addresses only) is what AWS gets.
LOCAL_WEBHOOK_ALLOWED_HOSTS = "127.0.0.0/8,::1/128"


def jwt_secret(state_dir: Path, environ: Mapping[str, str]) -> str:
    """JWT_SECRET when set (checked: at least 32 bytes), else one generated into .vid2mp3/jwt-secret."""
    given = environ.get("JWT_SECRET", "")
    if given:
        if len(given.encode()) < 32:
            raise ServiceError("JWT_SECRET", "must be at least 32 bytes long")
        return given
    path = state_dir / "jwt-secret"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def rabbitmq_vhost(url: str) -> str:
    """The virtual host an AMQP URL names ("/" when it names none), as pika reads it."""
    import pika

    return str(pika.URLParameters(url).virtual_host)


class LocalRun:
    """Everything `make run` starts, in order, and stops in reverse order."""

    def __init__(self, state_dir: Path = STATE_DIR, environ: Mapping[str, str] | None = None,
                 port: int | None = None, stack_name: str = deployer.STACK_NAME) -> None:
        self.state_dir = state_dir
        self.environ = dict(os.environ if environ is None else environ)
        self.port = port or int(self.environ.get("EMULATOR_PORT", DEFAULT_PORT))
        self.stack_name = stack_name
        self.services = LocalServices(state_dir, self.environ)
        self.emulator = Emulator(state_dir, self.port)
        self.bridge: Any = None
        self.resolved: ResolvedServices | None = None
        self.api_url = ""
        self.parameters: dict[str, str] = {}
        self.warmed = threading.Event()  # the warm pools are there
        self._stopping = False

    def start(self, say: Any = print, *, warm_in_background: bool = False) -> str:
        """Start everything; the warm pools (infra/warmup.py) are started before this returns, or, with
        `warm_in_background`, after (`self.warmed` is set once they are there)."""
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        load_settings(self.environ)  # every variable checked before anything starts (ConfigError)
        secret = jwt_secret(self.state_dir, self.environ)
        self.resolved = self.services.start()
        for line in self.resolved.origins:
            say(f"  {line}")
        from vid2mp3.db.migrate import apply_migrations

        applied = apply_migrations(self.resolved.database_url)
        say(f"  migrations: {', '.join(applied) if applied else 'up to date'}")
        self.emulator.start()
        say(f"  emulator: MiniStack {self.emulator.endpoint} (logs in .vid2mp3/logs/emulator.log)")
        self.parameters = {
            "DatabaseUrl": self.resolved.database_url,
            "MongodbUri": self.resolved.mongodb_uri,
            "RabbitmqUrl": self.resolved.rabbitmq_url,
            "SmtpHost": self.resolved.smtp_host,
            "SmtpPort": str(self.resolved.smtp_port),
            "JwtSecret": secret,
            # The bridge consumes (and AWS's MQ mapping would) on the vhost the functions publish to.
            "MQVirtualHost": rabbitmq_vhost(self.resolved.rabbitmq_url),
            "WebhookAllowedHosts": LOCAL_WEBHOOK_ALLOWED_HOSTS,
            **{param: self.environ[var] for var, param in PASSTHROUGH.items() if self.environ.get(var)},
        }
        self.api_url = self.deploy(say)
        self.start_bridge(say)
        if warm_in_background:
            threading.Thread(target=self._warm_up_quietly, args=(say,), name="warm-up", daemon=True).start()
        else:
            self.warm_up(say)
        self._write_runtime()
        say(f"  ready in {time.monotonic() - started:.0f} s")
        return self.api_url

    def deploy(self, say: Any = print) -> str:
        """Build and deploy; a code change needs only this (`make deploy`), not a restart."""
        t0 = time.monotonic()
        built = builder.build(self.state_dir)
        cache = self.state_dir / "build" / "zips"
        public = self.environ.get("PUBLIC_BASE_URL") or self.parameters.get("PublicBaseUrl", "")
        params = {**self.parameters, "PublicBaseUrl": public}
        outputs = deployer.deploy(built, params, endpoint=self.emulator.endpoint, stack_name=self.stack_name,
                                  region=REGION, cache=cache)
        url = deployer.stage_url(self.emulator.endpoint, outputs)
        if not public:  # links in emails point at the stage URL, known once the API exists
            params["PublicBaseUrl"] = url
            deployer.deploy(built, params, endpoint=self.emulator.endpoint, stack_name=self.stack_name,
                            region=REGION, cache=cache)
        self.parameters = params
        say(f"  deployed stack {self.stack_name} in {time.monotonic() - t0:.1f} s")
        return url

    def _warm_up_quietly(self, say: Any) -> None:
        try:
            self.warm_up(say)
        except Exception as exc:  # the stack works without warm pools, only its first requests are slower
            if not self._stopping:  # stopping ends the warm-up's workers too: nothing to report
                say(f"  warm-up incomplete ({exc}); first requests start their own environments")
        finally:
            self.warmed.set()

    def warm_up(self, say: Any = print) -> None:
        """Start the functions' execution environments now (infra/warmup.py), not at the first requests."""
        from infra.bridge import lambda_client
        from infra.template_model import load_template
        from infra.warmup import warm_pools, warm_up

        cap = self.environ.get("LOCAL_WARM_POOL", "").strip()
        pools = warm_pools(load_template(), self.parameters, int(cap) if cap else None)
        if not pools:
            self.warmed.set()
            return
        cfn = boto3.client("cloudformation", endpoint_url=self.emulator.endpoint, region_name=REGION,
                           aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                    for r in cfn.describe_stack_resources(StackName=self.stack_name)["StackResources"]}
        lam = lambda_client(self.emulator.endpoint, read_timeout_s=300, region=REGION, credentials=CREDENTIALS)
        took = warm_up(lam, {fn: (physical[fn], n) for fn, n in pools.items()})
        described = ", ".join(f"{n} {fn.removesuffix('Function')}" for fn, n in sorted(pools.items()))
        say(f"  warm: {described} ({sum(pools.values())} environments in {took:.0f} s)")
        self.warmed.set()

    def start_bridge(self, say: Any = print) -> None:
        from infra.bridge import Bridge, lambda_client, mappings_for_stack

        assert self.resolved is not None
        # Read timeout above the longest function timeout (15 min); no client-side retries.
        lam = lambda_client(self.emulator.endpoint, read_timeout_s=960, region=REGION, credentials=CREDENTIALS)
        cfn = boto3.client("cloudformation", endpoint_url=self.emulator.endpoint, region_name=REGION,
                           aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        mappings = mappings_for_stack(cfn, self.stack_name)
        self.bridge = Bridge(self.resolved.rabbitmq_url, lam, mappings)
        self.bridge.start()
        described = ", ".join(f"{m.source.function} <- {m.source.queue}" for m in mappings) or "none"
        say(f"  bridge: {described}")

    def _write_runtime(self) -> None:
        path = self.state_dir / "runtime.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps({"endpoint": self.emulator.endpoint, "stack": self.stack_name,
                                    "api_url": self.api_url, "pid": os.getpid(),
                                    "parameters": self.parameters}, indent=2))
        (self.state_dir / "api-url").write_text(self.api_url + "\n")

    def stop(self) -> None:
        self._stopping = True
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        self.emulator.stop()
        self.services.stop()
        self._remove_runtime()

    def _remove_runtime(self) -> None:
        """runtime.json, when this process wrote it: a run that failed to start (the state directory in
        use) must not hide the one that is running from `make deploy` and the e2e tier."""
        path = self.state_dir / "runtime.json"
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def run(environ: Mapping[str, str] | None = None) -> int:
    """`make run`: start everything, print the page's and the API's URLs, and stop it all on Ctrl-C."""
    os.environ.update(CREDENTIALS)
    stop = threading.Event()
    starting = True

    def on_signal(*_: object) -> None:
        stop.set()
        if starting:  # interrupt a start in progress; `finally` stops what already runs
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    local = LocalRun(environ=environ)
    print("vid2mp3: starting the local stack", flush=True)
    try:
        if stop.is_set():
            return 130
        # The warm pools start after "ready" (about a minute on two cores; a `warm:` line says when):
        # the stack answers meanwhile, its first requests just start their own environments.
        api = local.start(say=lambda line: print(line, flush=True), warm_in_background=True)
        starting = False
        print(f"Page: {api}/  (open it in a browser)", flush=True)
        print(f"API: {api}", flush=True)
        print(CLI_USAGE.format(api=api), flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
        print("\nstopping ...", flush=True)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping ...", flush=True)
        return 130
    except (ServiceError, BridgeError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (botocore.exceptions.ClientError, botocore.exceptions.WaiterError) as exc:
        print(f"error: deploying to the emulator failed: {exc} (see .vid2mp3/logs/emulator.log)",
              file=sys.stderr)
        return 1
    finally:
        local.stop()
        print("stopped.", flush=True)
