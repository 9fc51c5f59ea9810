"""infra.services and infra.smtp_sink against the real thing: local PostgreSQL and RabbitMQ, the embedded
PostgreSQL, SecantusDB, rabbitmq-server and the SMTP sink. Nothing is mocked and nothing is skipped: a
missing dependency fails here."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pika
import psycopg
import pymongo
import pytest

from infra import procs
from infra.services import LocalServices, ServiceError, start_embedded_postgres
from infra.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: when the tests run as root the embedded PostgreSQL runs as an unprivileged
    # account, which must be able to enter the directory, and /tmp/pytest-of-root is 0700.
    path = Path(tempfile.mkdtemp(prefix="vid2mp3-services-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def closed_port() -> int:
    return procs.free_port()  # bound and released: nothing listens there


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def send_mail(port: int, subject: str, to: str = "alice@example.com") -> None:
    msg = EmailMessage()
    msg["From"] = "vid2mp3 <no-reply@vid2mp3.local>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Your MP3 is ready.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_one_line(error: ServiceError, variable: str) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{variable}: "), text
    return text


# --- SMTP sink


def test_sink_stores_each_message_as_a_parseable_eml_in_arrival_order(state_dir: Path) -> None:
    mail = state_dir / "mail"
    with SmtpSink(mail) as sink:
        assert sink.port > 0
        send_mail(sink.port, "Your MP3 is ready: talk.mp3")
        send_mail(sink.port, "Conversion failed: broken.mp4", to="bob@example.com")
        # A mailer configured with credentials is accepted as well, over plain SMTP.
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
            smtp.login("someone", "anything")
            smtp.sendmail("a@example.com", ["carol@example.com"], b"Subject: third\r\n\r\nhi\r\n")
        files = sink.messages()
        port = sink.port
    assert not procs.port_open(port)

    assert [p.suffix for p in files] == [".eml"] * 3
    assert files == sorted(mail.glob("*.eml"))
    assert len({p.name for p in files}) == 3
    first, second, third = (read_eml(p) for p in files)
    assert first["Subject"] == "Your MP3 is ready: talk.mp3"
    assert first["To"] == "alice@example.com"
    assert first.get_content() == "Your MP3 is ready.\n"
    assert second["Subject"] == "Conversion failed: broken.mp4"
    assert second["To"] == "bob@example.com"
    assert third["Subject"] == "third"
    assert third["X-Envelope-To"] == "carol@example.com"
    assert not list(mail.glob(".*"))  # no partial files left behind


def test_sink_runs_in_the_foreground_as_a_module(state_dir: Path) -> None:
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.smtp_sink", "--dir", str(state_dir / "mail"), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().decode()
        assert f"127.0.0.1:{port}" in banner, banner
        send_mail(port, "from the module")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None
        proc.stdout.close()
    (eml,) = (state_dir / "mail").glob("*.eml")
    assert read_eml(eml)["Subject"] == "from the module"


# --- resolution


def test_empty_environ_uses_local_postgres_and_rabbitmq_and_starts_the_rest(state_dir: Path) -> None:
    services = LocalServices(state_dir, {})
    try:
        resolved = services.start()
        assert resolved.database_url == "postgresql://postgres@127.0.0.1:5432/vid2mp3"
        assert resolved.rabbitmq_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
        assert resolved.mongodb_uri.startswith("mongodb://127.0.0.1:")
        assert "directConnection=true" in resolved.mongodb_uri
        assert resolved.smtp_host == "127.0.0.1"
        origins = "\n".join(resolved.origins)
        assert "postgres: local server 127.0.0.1:5432 (database vid2mp3)" in origins
        assert "rabbitmq: local broker 127.0.0.1:5672" in origins
        assert "mongodb: embedded SecantusDB" in origins
        assert "smtp: embedded sink" in origins
        assert set(resolved.environ()) == {"DATABASE_URL", "MONGODB_URI", "RABBITMQ_URL", "SMTP_HOST",
                                           "SMTP_PORT"}

        # Each one works.
        with psycopg.connect(resolved.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("vid2mp3",)
        with pymongo.MongoClient(resolved.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
            client.get_database("vid2mp3").marker.insert_one({"_id": "kept", "n": 1})
        connection = pika.BlockingConnection(pika.URLParameters(resolved.rabbitmq_url))
        connection.close()
        send_mail(resolved.smtp_port, "through the resolved sink")
        (eml,) = (state_dir / "mail").glob("*.eml")
        assert read_eml(eml)["Subject"] == "through the resolved sink"
        assert (state_dir / "logs" / "mongodb.log").exists()

        # The state directory belongs to one run at a time.
        with pytest.raises(ServiceError, match="in use by another vid2mp3 run"):
            LocalServices(state_dir, {}).start()

        pids = services.pids()
        assert len(pids) == 1  # SecantusDB; the sink runs in-process
        ports = [int(resolved.mongodb_uri.split(":")[2].split("/")[0]), resolved.smtp_port]
    finally:
        services.stop()
    services.stop()  # idempotent
    assert services.pids() == []
    assert [pid for pid in pids if running(pid)] == []
    assert [port for port in ports if procs.port_open(port)] == []
    assert procs.port_open(5432) and procs.port_open(5672)  # what we found, we leave alone

    # A second run with the same state directory finds the data again.
    with LocalServices(state_dir, {}) as again, pymongo.MongoClient(again.mongodb_uri) as client:
        assert client.get_database("vid2mp3").marker.find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}


def test_fallbacks_start_embedded_postgres_and_rabbitmq_server(state_dir: Path) -> None:
    nothing = closed_port()
    services = LocalServices(state_dir, {}, local_postgres_port=nothing, local_rabbitmq_port=nothing)
    try:
        resolved = services.start()
        origins = "\n".join(resolved.origins)
        assert "postgres: embedded server 127.0.0.1:" in origins
        assert "rabbitmq: started rabbitmq-server 127.0.0.1:" in origins
        with psycopg.connect(resolved.database_url) as conn:
            assert conn.execute("SELECT current_database(), 1").fetchone() == ("vid2mp3", 1)
        connection = pika.BlockingConnection(pika.URLParameters(resolved.rabbitmq_url))
        channel = connection.channel()
        channel.queue_declare("vid2mp3_services_test", durable=True)
        connection.close()
        assert (state_dir / "logs" / "postgres.log").exists()
        assert (state_dir / "logs" / "rabbitmq.log").exists()
        pids = services.pids()
        assert len(pids) >= 3  # postgres, SecantusDB, rabbitmq-server (and its Erlang VM)
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in (resolved.database_url,
                                                                    resolved.rabbitmq_url)]
    finally:
        services.stop()
    assert [pid for pid in pids if running(pid)] == []
    assert [port for port in ports if procs.port_open(port)] == []


def test_no_broker_anywhere_names_both_ways_to_get_one(state_dir: Path) -> None:
    services = LocalServices(state_dir, {}, local_rabbitmq_port=closed_port(),
                             rabbitmq_server="vid2mp3-no-such-rabbitmq-server")
    with pytest.raises(ServiceError) as caught:
        services.start()
    text = assert_one_line(caught.value, "RABBITMQ_URL")
    assert "set RABBITMQ_URL" in text
    assert "apt-get install rabbitmq-server" in text
    assert services.pids() == []  # it failed before starting anything


# --- bad settings


def test_unreachable_database_url_is_one_line_without_the_password(state_dir: Path) -> None:
    environ = {"DATABASE_URL": "postgresql://u:secretpw@127.0.0.1:1/x"}
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, environ, probe_timeout=2).start()
    text = assert_one_line(caught.value, "DATABASE_URL")
    assert text == "DATABASE_URL: cannot connect to 127.0.0.1:1 (connection refused)"
    assert "secretpw" not in text


def test_wrong_database_password_is_reported_without_it(state_dir: Path) -> None:
    environ = {"DATABASE_URL": "postgresql://postgres:secretpw@127.0.0.1:5432/no_such_database_here"}
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, environ, probe_timeout=2).start()
    text = assert_one_line(caught.value, "DATABASE_URL")
    assert "no_such_database_here" in text
    assert "secretpw" not in text


def test_malformed_rabbitmq_url_is_one_line(state_dir: Path) -> None:
    environ = {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:notaport/"}
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, environ).start()
    text = assert_one_line(caught.value, "RABBITMQ_URL")
    assert "notaport" in text and "guest:guest" not in text


def test_rabbitmq_url_with_wrong_password_is_one_line_without_it(state_dir: Path) -> None:
    environ = {"RABBITMQ_URL": "amqp://guest:secretpw@127.0.0.1:5672/%2F"}
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, environ, probe_timeout=2).start()
    text = assert_one_line(caught.value, "RABBITMQ_URL")
    assert "authentication refused" in text and "secretpw" not in text


def test_mongodb_uri_on_a_closed_port_is_one_line(state_dir: Path) -> None:
    port = closed_port()
    environ = {"MONGODB_URI": f"mongodb://u:secretpw@127.0.0.1:{port}/vid2mp3"}
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, environ, probe_timeout=1).start()
    text = assert_one_line(caught.value, "MONGODB_URI")
    assert text == f"MONGODB_URI: cannot connect to 127.0.0.1:{port} (connection refused)"


def test_smtp_host_on_a_closed_port_is_one_line(state_dir: Path) -> None:
    port = closed_port()
    with pytest.raises(ServiceError) as caught:
        LocalServices(state_dir, {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)}, probe_timeout=1).start()
    assert assert_one_line(caught.value, "SMTP_HOST") == (
        f"SMTP_HOST: cannot connect to 127.0.0.1:{port} (connection refused)")


# --- embedded postgres


def test_embedded_postgres_starts_answers_stops_and_keeps_its_data(state_dir: Path) -> None:
    data, log = state_dir / "postgres", state_dir / "logs" / "postgres.log"
    table = f"t_{uuid.uuid4().hex[:8]}"

    started = time.monotonic()
    server = start_embedded_postgres(data, log)
    first_start = time.monotonic() - started
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute(f"CREATE TABLE {table} (n int)")
            conn.execute(f"INSERT INTO {table} VALUES (42)")
        pid, port = server.pid, server.port
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not running(pid)
    assert not procs.port_open(port)
    assert not (data / "postmaster.pid").exists()
    assert first_start < 30, f"initdb + start took {first_start:.1f} s"

    server = start_embedded_postgres(data, log)
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute(f"SELECT n FROM {table}").fetchone() == (42,)
    finally:
        server.stop()
    assert not running(server.pid)
    assert not procs.port_open(server.port)
