"""The HTTP API, as the command line uses it (httpx): JSON calls with the login token, errors turned into
one line each (`{"error": {"code", "message"}}`), and a transport failure into "could not reach the API".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx

from vid2mp3.cli.errors import ApiError, CliError, NotLoggedIn, Unreachable

# API Gateway gives a request at most 29 s; a part of 4 MiB may take a while to send on a slow link.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
USER_AGENT = "vid2mp3-cli/0.1"


class Api:
    def __init__(self, base_url: str, *, token: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        # Redirects are followed by hand (downloads): the token must never go to where one points.
        self.http = httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT})

    def __enter__(self) -> Api:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.http.close()

    def url(self, path_or_url: str) -> str:
        """An API path ("/videos") under the stage URL; an absolute URL the API gave stays as it is."""
        return urljoin(self.base_url + "/", path_or_url.lstrip("/")) if "://" not in path_or_url else path_or_url

    def headers(self, extra: Mapping[str, str] | None = None, *, auth: bool = True) -> dict[str, str]:
        out = {"Accept": "application/json"}
        if auth and self.token:
            out["Authorization"] = f"Bearer {self.token}"
        out.update(extra or {})
        return out

    def send(self, method: str, path: str, *, auth: bool = True, headers: Mapping[str, str] | None = None,
             json: Any = None, content: bytes | None = None, params: Mapping[str, str] | None = None,
             ok_statuses: tuple[int, ...] = ()) -> httpx.Response:
        """One request; an error answer raises (unless its status is in `ok_statuses`)."""
        try:
            response = self.http.request(method, self.url(path), headers=self.headers(headers, auth=auth), json=json,
                                         content=content, params=params)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from None
        if response.status_code >= 400 and response.status_code not in ok_statuses:
            raise error_from(response, authed=auth and self.token is not None)
        return response

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.send("GET", path, params=params).json()

    def post_json(self, path: str, body: Any, *, auth: bool = True) -> Any:
        return self.send("POST", path, json=body, auth=auth).json()


def unreachable(base_url: str, exc: httpx.TransportError) -> Unreachable:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = "no answer in time"
    return Unreachable(f"Could not reach the API at {base_url} ({reason}).")


def error_from(response: httpx.Response, *, authed: bool) -> CliError:
    """The API's error as one line; a 401 to a call made with a token means the login is over."""
    status = response.status_code
    code, message = f"http_{status}", f"The API answered {status} {response.reason_phrase}."
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or code)
        message = str(body["error"].get("message") or message)
    elif isinstance(body, dict) and isinstance(body.get("message"), str):  # the gateway's own answers
        message = f"The API answered {status}: {body['message']}."
    if status == 401 and authed:
        return NotLoggedIn("Your login has expired or is no longer valid: log in again (vid2mp3 login EMAIL).",
                           code="session_expired")
    return ApiError(status, code, message)
