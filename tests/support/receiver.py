"""A webhook receiver as a customer would run one: a real HTTP server on 127.0.0.1 that verifies each
delivery's Vid2mp3-Signature and answers with the statuses it is told to (then 200)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vid2mp3.webhooks.signing import HEADER, verify


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    secret: str = ""
    answers: list[int] = field(default_factory=list)  # the statuses to answer with, in order; then 200
    received: list[Delivery] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = self.answers.pop(0) if self.answers else 200
            ok = bool(self.secret) and verify(self.secret, headers.get(HEADER, ""), body, now=time.time())
            self.received.append(Delivery(path, headers, body, status, ok))
            return status

    def wait_for(self, count: int, timeout_s: float = 60.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} deliveries, not {count}, in {timeout_s} s"
            time.sleep(0.1)
        return list(self.received)


@contextmanager
def receiver(secret: str = "", answers: list[int] | None = None) -> Iterator[Receiver]:
    state = Receiver(secret=secret, answers=list(answers or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = state.take(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/vid2mp3"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
