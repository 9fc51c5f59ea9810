"""The web page at GET / of the API: its static files, and the headers a page needs.

The page is plain HTML, CSS and JavaScript (no build step) shipped in the web function's directory
(functions/web/static). At cold start every file is read once and given a version (a prefix of its
SHA-256) and a Subresource Integrity digest; index.html names its assets with placeholders
(`{{static:app.js}}`, `{{sri:app.js}}`) that become `static/app.js?v=<version>` and `sha384-...`.
An asset asked for at its current version is immutable and cached for a year; anything else is
revalidated (ETag), so a new deployment is seen at once.

Every response carries the same security headers: a Content-Security-Policy that allows scripts,
styles and connections to this origin only (no inline script or style, no eval, Trusted Types
enforced), nosniff, no referrer, no framing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vid2mp3.http import error_body

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "Reply", "Site"]

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",  # the API and the tus uploads; downloads are navigations, not fetches
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",  # no string ever reaches an HTML or script sink
    "trusted-types 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".map": "application/json; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
INDEX = "index.html"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # may be stored, but asked about (ETag) before each use
_PLACEHOLDER = re.compile(r"\{\{(static|sri):([A-Za-z0-9._-]+)\}\}")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str = ""


@dataclass(frozen=True)
class Asset:
    name: str
    body: str
    content_type: str
    version: str = field(init=False)
    integrity: str = field(init=False)

    def __post_init__(self) -> None:
        raw = self.body.encode("utf-8")
        object.__setattr__(self, "version", hashlib.sha256(raw).hexdigest()[:16])
        object.__setattr__(self, "integrity", "sha384-" + base64.b64encode(hashlib.sha384(raw).digest()).decode())

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class Site:
    """The page's files, read once (at cold start) from `directory`."""

    def __init__(self, directory: Path) -> None:
        self.assets: dict[str, Asset] = {}
        for path in sorted(directory.iterdir()):
            content_type = CONTENT_TYPES.get(path.suffix)
            if path.is_file() and content_type is not None and path.name != INDEX:
                self.assets[path.name] = Asset(path.name, path.read_text(encoding="utf-8"), content_type)
        self.index = Asset(INDEX, self._render((directory / INDEX).read_text(encoding="utf-8")),
                           CONTENT_TYPES[".html"])

    def _render(self, template: str) -> str:
        def fill(match: re.Match[str]) -> str:
            kind, name = match.groups()
            asset = self.assets.get(name)
            if asset is None:
                raise ValueError(f"{INDEX} names {name}, which is not among the page's files")
            return f"static/{name}?v={asset.version}" if kind == "static" else asset.integrity

        return _PLACEHOLDER.sub(fill, template)

    def page(self, request_path: str | None, *, if_none_match: str | None = None) -> Reply:
        """GET /. The page's URLs are relative to it, so it must be asked for with a trailing slash:
        `.../v1` is redirected to `.../v1/` (a relative Location, right behind any prefix the browser
        sees, such as the local emulator's `/_aws/execute-api/<id>`)."""
        if request_path and not request_path.endswith("/"):
            last = request_path.rstrip("/").rsplit("/", 1)[-1]
            return Reply(301, {**SECURITY_HEADERS, "Location": f"{last}/", "Cache-Control": "no-cache"})
        return self._serve(self.index, REVALIDATE, if_none_match)

    def asset(self, name: str, *, version: str | None = None, if_none_match: str | None = None) -> Reply:
        """GET /static/{name}; immutable when asked for at its current version."""
        asset = self.assets.get(name)
        if asset is None:
            return not_found()
        return self._serve(asset, IMMUTABLE if version == asset.version else REVALIDATE, if_none_match)

    @staticmethod
    def _serve(asset: Asset, cache_control: str, if_none_match: str | None) -> Reply:
        headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag}
        if if_none_match and asset.etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]:
            return Reply(304, headers)
        return Reply(200, {**headers, "Content-Type": asset.content_type}, asset.body)


def not_found() -> Reply:
    body = json.dumps(error_body("not_found", "No such file on this page."))
    return Reply(404, {**SECURITY_HEADERS, "Content-Type": "application/json", "Cache-Control": "no-store"}, body)
