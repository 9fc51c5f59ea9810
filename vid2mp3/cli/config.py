"""Where the API is, and where the command keeps what it remembers (the user's config directory).

The API URL comes from `--api`, else `VID2MP3_API`, else the `.vid2mp3/api-url` that `make run` writes,
looked for in the current directory and its parents. The config directory is the platform's (XDG on
Linux: `$XDG_CONFIG_HOME/vid2mp3`, by default `~/.config/vid2mp3`); it holds the login tokens
(`credentials.json`) and the unfinished uploads (`uploads/`), each readable by the user alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from vid2mp3.cli.errors import UsageError

API_ENV = "VID2MP3_API"
LOCAL_RUN_FILE = Path(".vid2mp3") / "api-url"


@dataclass(frozen=True)
class ApiUrl:
    url: str
    source: str  # where it came from, for messages: "--api", "VID2MP3_API" or the file's path

    @property
    def local_run(self) -> bool:
        return self.source.endswith(str(LOCAL_RUN_FILE))


def resolve_api_url(given: str | None, environ: Mapping[str, str], cwd: Path) -> ApiUrl:
    if given:
        return ApiUrl(_checked(given, "--api"), "--api")
    if environ.get(API_ENV):
        return ApiUrl(_checked(environ[API_ENV], API_ENV), API_ENV)
    for directory in (cwd, *cwd.parents):
        candidate = directory / LOCAL_RUN_FILE
        if candidate.is_file():
            return ApiUrl(_checked(candidate.read_text(encoding="utf-8").strip(), str(candidate)), str(candidate))
    raise UsageError(f"Which API? Pass --api URL or set {API_ENV} (in the project, `make run` writes "
                     f"{LOCAL_RUN_FILE} and the command finds it).", code="no_api_url")


def _checked(url: str, source: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{source}: the API URL must start with http:// or https:// (got {url!r}).",
                         code="bad_api_url")
    return url


def config_dir() -> Path:
    """The user's config directory for vid2mp3 (platformdirs reads XDG_CONFIG_HOME at call time)."""
    return Path(platformdirs.user_config_dir("vid2mp3", appauthor=False))


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_private_json(path: Path, data: Any) -> None:
    """Write `data` as JSON readable by the user alone (0600), atomically: a reader sees the old file or
    the new one, never half of one."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when there is none (or it is not JSON: it is rewritten next time)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
