"""The e2e tier's HTTP client: what a user's client does, over the stage URL.

Every request and response body it carries is counted (`TRAFFIC`): the e2e tier checks at its end that
none crossed Lambda's 6 MB payload limit, as AWS would refuse (vid2mp3.limits).
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

PASSWORD = "correct horse battery staple"
TIMEOUT = 60  # seconds: the first call of a cold function can be slow on the emulator


@dataclass
class Traffic:
    """The largest request and response bodies sent through the API, with what they were."""

    largest_request: tuple[int, str] = (0, "")
    largest_response: tuple[int, str] = (0, "")

    def saw(self, request_bytes: int, response_bytes: int, what: str) -> None:
        if request_bytes > self.largest_request[0]:
            self.largest_request = (request_bytes, what)
        if response_bytes > self.largest_response[0]:
            self.largest_response = (response_bytes, what)


TRAFFIC = Traffic()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The API's own answer, a redirect included: where it points is storage, not the API."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes
    body: Any = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.body = json.loads(self.raw) if self.raw else None
        except ValueError:
            self.body = None

    def error_code(self) -> str:
        assert isinstance(self.body, dict) and set(self.body) == {"error"}, self.raw
        assert set(self.body["error"]) == {"code", "message"}, self.raw
        return str(self.body["error"]["code"])


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.source_ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"X-Forwarded-For": self.source_ip, "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                reply = Reply(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                reply = Reply(exc.code, dict(exc.headers.items()), exc.read())
        TRAFFIC.saw(len(data or b""), len(reply.raw), f"{method} {path.split('?')[0]} -> {reply.status}")
        return reply

    def register(self, email: str, password: str = PASSWORD) -> Reply:
        return self.request("POST", "/auth/register", {"email": email, "password": password})

    def login(self, email: str, password: str = PASSWORD) -> Reply:
        return self.request("POST", "/auth/login", {"email": email, "password": password})

    def me(self, token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", "/auth/me", token=token, headers=headers)


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:16]}@example.com"


class Account:
    """A new user of the API, registered and logged in from the Api's own address; `call` sends their
    token. Test modules add what they do with it."""

    finish_timeout_s = 180.0  # how long wait_finished waits for a conversion

    def __init__(self, api: Api) -> None:
        self.api = api
        self.email = new_email()
        reply = api.register(self.email)
        assert reply.status == 201, reply.raw
        self.id = str(reply.body["id"])
        reply = api.login(self.email)
        assert reply.status == 200, reply.raw
        self.token = str(reply.body["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> Reply:
        return self.api.request(method, path, token=self.token, **kw)

    def wait_finished(self, job_id: str) -> dict[str, Any]:
        """The job once it is done or failed (polled every half second)."""
        deadline = time.monotonic() + self.finish_timeout_s
        seen = []
        while True:
            reply = self.call("GET", f"/videos/{job_id}")
            assert reply.status == 200, reply.raw
            seen.append(reply.body["status"])
            if reply.body["status"] in ("done", "failed"):
                return dict(reply.body)
            assert time.monotonic() < deadline, f"job {job_id} still {reply.body['status']} (seen {seen[-5:]})"
            time.sleep(0.5)
