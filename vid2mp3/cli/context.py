"""What every command gets: the API's URL, the user's config directory, the login, the consoles, and
whether the caller wants JSON."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from rich.console import Console, RenderableType

from vid2mp3.cli.api import Api
from vid2mp3.cli.config import ApiUrl
from vid2mp3.cli.errors import CliError, NotLoggedIn, UsageError
from vid2mp3.cli.session import Credentials, Login, log_in


@dataclass
class Context:
    api_url: ApiUrl
    config: Path
    stdin: TextIO
    out: Console  # standard output: results
    err: Console  # standard error: progress, failures
    json: bool = False
    transport: httpx.BaseTransport | None = field(default=None, repr=False)  # tests hand in a fake API

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.config)

    def api(self, token: str | None = None) -> Api:
        return Api(self.api_url.url, token=token, transport=self.transport)

    def login(self) -> Login:
        """The kept login for this API; an expired one is renewed by asking for the password on a terminal."""
        login = self.credentials.get(self.api_url.url)
        if login is None:
            raise NotLoggedIn(f"Not logged in to {self.api_url.url}: run `vid2mp3 login EMAIL` first.")
        if not login.expired():
            return login
        if not self.stdin.isatty():
            raise NotLoggedIn(f"Your login as {login.email} has expired: log in again "
                              f"(vid2mp3 login {login.email}).", code="session_expired")
        self.err.print(f"Your login as {login.email} has expired.", markup=False, highlight=False)
        with self.api() as api:
            login = log_in(api, login.email, self.password(f"Password for {login.email}: "))
        self.credentials.save(self.api_url.url, login)
        return login

    def authed_api(self) -> Api:
        return self.api(self.login().token)

    def password(self, prompt: str, *, confirm: bool = False) -> str:
        """Asked for on a terminal (not echoed), else the first line of standard input."""
        if self.stdin.isatty():
            password = getpass.getpass(prompt)
            if confirm and getpass.getpass("Repeat it: ") != password:
                raise UsageError("The two passwords differ.", code="password_mismatch")
        else:
            password = self.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("No password given (type it when asked, or send it on standard input).",
                             code="no_password")
        return password

    def emit(self, data: Any, human: RenderableType | None) -> None:
        """The command's result: `data` as JSON with --json, else `human` (if any)."""
        if self.json:
            self.out.file.write(json.dumps(data) + "\n")
            self.out.file.flush()
        elif human is not None:
            self.out.print(human, markup=False, highlight=False)

    def failure(self, error: CliError, *, about: str = "") -> None:
        report_failure(self.out, self.err, error, as_json=self.json, about=about)


def report_failure(out: Console, err: Console, error: CliError, *, as_json: bool, about: str = "") -> None:
    """One line on standard error (and with --json the error object on standard output)."""
    err.print(f"vid2mp3: {about}{error.message}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        out.file.write(json.dumps({"error": {"code": error.code, "message": error.message}}) + "\n")
        out.file.flush()
