"""Fixtures shared by the integration and e2e tiers: the real services, never fakes.

A missing service fails the test loudly; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymongo
import pytest

from infra import procs

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@contextlib.contextmanager
def fresh_database(prefix: str = "vid2mp3_test") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards: what one run leaves never meets the next."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database with the migrations applied, dropped afterwards."""
    from vid2mp3.db.migrate import apply_migrations

    with fresh_database() as url:
        apply_migrations(url)
        yield url


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB-wire server: MONGODB_URI when given (real mongod in CI), else embedded SecantusDB."""
    given = os.environ.get("TEST_MONGODB_URI")
    if given:
        yield given
        return
    port = procs.free_port()
    data = tmp_path_factory.mktemp("secantus")
    exe = Path(sys.executable).parent / "secantusd-py"
    proc = procs.spawn([str(exe), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data),
                        "--log-level", "WARNING"], log=data / "server.log")
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + 30
    while True:
        try:
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"SecantusDB did not start: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield uri
    procs.stop_group(proc)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is required at 127.0.0.1:5672: {exc!r}")
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def built_artifacts() -> Path:
    """The functions and layers built exactly as a deploy builds them."""
    from infra.build import build

    state = ROOT / ".vid2mp3"
    build(state)
    return state / "build"


def run_isolated(code: str, paths: list[Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` in a clean interpreter that sees the stdlib and `paths` only (-I -S: no site-packages)."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    return subprocess.run([sys.executable, "-I", "-S", "-B", "-c", prelude + code], capture_output=True, text=True,
                          env=env or {"PATH": "/usr/bin:/bin"}, timeout=120)
