"""The login tokens the command keeps, one per API URL, in `credentials.json` (mode 0600) in the user's
config directory. A token is only ever sent to the API it was issued by."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vid2mp3.cli.api import Api
from vid2mp3.cli.config import read_json, write_private_json

EXPIRY_MARGIN_S = 60.0  # a token this close to its end is as good as expired: a command may take a while


@dataclass(frozen=True)
class Login:
    email: str
    token: str
    expires_at: float  # seconds since the epoch

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at - EXPIRY_MARGIN_S


class Credentials:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "credentials.json"

    def _all(self) -> dict[str, dict[str, object]]:
        data = read_json(self.path)
        return data if isinstance(data, dict) else {}

    def get(self, api_url: str) -> Login | None:
        entry = self._all().get(api_url)
        try:
            return Login(str(entry["email"]), str(entry["token"]), float(entry["expires_at"]))  # type: ignore[index,arg-type]
        except (TypeError, KeyError, ValueError):
            return None

    def save(self, api_url: str, login: Login) -> None:
        entries = self._all()
        entries[api_url] = asdict(login)
        write_private_json(self.path, entries)

    def forget(self, api_url: str) -> bool:
        entries = self._all()
        if entries.pop(api_url, None) is None:
            return False
        write_private_json(self.path, entries)
        return True


def log_in(api: Api, email: str, password: str, *, now: float | None = None) -> Login:
    """POST /auth/login; the login to keep (a bad password is the API's 401, one line)."""
    started = time.time() if now is None else now
    answer = api.post_json("/auth/login", {"email": email, "password": password}, auth=False)
    return Login(email, str(answer["access_token"]), started + float(answer["expires_in"]))
