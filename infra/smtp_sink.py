"""An SMTP sink for the local run: every message it receives becomes one `.eml` file, nothing is relayed.

Plain SMTP only (no STARTTLS) and no authentication required; an AUTH attempt with any credentials is
accepted too, so a mailer configured with SMTP_USERNAME/SMTP_PASSWORD still delivers here (the same
stance as mailpit's `--smtp-auth-accept-any`). It listens on loopback by default.

    python -m infra.smtp_sink --dir .vid2mp3/mail --port 1025
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

LOG = logging.getLogger(__name__)

# Far more than a notification needs; a bigger message is refused with 552.
DATA_SIZE_LIMIT = 10 * 1024 * 1024


class _EmlWriter:
    """aiosmtpd handler: writes each message under `directory` as `<UTC time>-<seq>-<random>.eml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def _name(self) -> str:
        # Sortable by time (UTC, microseconds), then by arrival order within this process; the random part
        # keeps two sinks (or two runs) writing into the same directory from ever clashing.
        with self._lock:
            seq = next(self._seq)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{stamp}-{seq:06d}-{uuid.uuid4().hex[:8]}.eml"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        # SMTP carries CRLF; the file gets LF, as a message delivered to a Unix mailbox does (Python's email
        # parser, for one, would otherwise leave a "\r" at the end of every body line).
        content = content.replace(b"\r\n", b"\n")
        # The envelope is not part of the message; keep it the way a delivering MTA does, on top.
        mail_from = envelope.mail_from or ""
        trace = [
            b"Return-Path: <" + mail_from.encode("utf-8", "replace") + b">",
            b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode("utf-8", "replace"),
        ]
        name = self._name()
        target = self.directory / name
        partial = self.directory / f".{name}.partial"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                out.write(b"\n".join(trace) + b"\n" + content)
            os.replace(partial, target)  # readers never see a half-written .eml
        except OSError as exc:
            LOG.error("smtp sink: cannot store a message in %s: %s", self.directory, exc)
            return "451 Requested action aborted: cannot store the message"
        LOG.info("smtp sink: stored %s (from %s to %s)", target.name, mail_from, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def _accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
    return AuthResult(success=True)


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns about its own deprecated `Session.login_data` on every successful AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


_AIOSMTPD_LOG = logging.getLogger("mail.log")  # aiosmtpd's logger
_LOGIN_DATA_FILTER = _DropLoginDataWarning()


class _Controller(Controller):
    """aiosmtpd's Controller, taught port 0.

    Controller.start() opens a connection to `self.port` to make the server instantiate its protocol;
    with port 0 that would dial port 0. The listening socket exists by then, so read the real port first.
    """

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpSink:
    """An in-process SMTP server (on a background thread) that keeps messages as `.eml` files."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port  # the real port once started (when 0 was asked for)
        self._controller: _Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        _AIOSMTPD_LOG.addFilter(_LOGIN_DATA_FILTER)  # adding the same filter twice is a no-op
        controller = _Controller(
            _EmlWriter(self.directory),
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",  # the default, socket.getfqdn(), can stall on DNS
            data_size_limit=DATA_SIZE_LIMIT,
            auth_require_tls=False,
            authenticator=_accept_any_login,
        )
        controller.start()
        self._controller = controller
        self.port = int(controller.port)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def messages(self) -> list[Path]:
        """The stored messages, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.eml"))

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smtp_sink",
                                     description="SMTP sink that stores each message as an .eml file.")
    parser.add_argument("--dir", required=True, type=Path, help="directory for the .eml files")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", default=1025, type=int, help="port to listen on; 0 picks a free one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sink = SmtpSink(args.dir, host=args.host, port=args.port)
    try:
        sink.start()
    except OSError as exc:
        print(f"smtp sink: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})", flush=True)
        return 1
    print(f"smtp sink listening on {sink.host}:{sink.port}, storing messages in {sink.directory}", flush=True)
    try:
        while not done.wait(1.0):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
