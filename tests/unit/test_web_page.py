"""The web function: the page and its files, with the headers a page needs, driven with API Gateway events."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from functions.web import app as web
from infra import vendor_tus
from tests.support.apigw import Result, apigw_event
from vid2mp3.limits import MAX_BODY_BYTES
from vid2mp3.web import Site

STATIC = Path(web.__file__).resolve().parent / "static"


def get(resource: str, *, name: str | None = None, query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None, stage_path: str | None = None) -> Result:
    event = apigw_event("GET", resource, caller=None, query=query, headers=headers)
    if name is not None:
        event["path"] = f"/static/{name}"
        event["pathParameters"] = {"name": name}
    if stage_path is not None:
        event["requestContext"]["path"] = stage_path
    return Result(web.handler(event, None))


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def parsed_page() -> Tags:
    page = get("/")
    assert page.status == 200
    tags = Tags()
    tags.feed(page.body.decode())
    return tags


def every_kind_of_response() -> dict[str, Result]:
    page = get("/")
    css = web.site.assets["app.css"]
    return {
        "page": page,
        "page, not modified": get("/", headers={"If-None-Match": page.headers["etag"]}),
        "page without its trailing slash": get("/", stage_path="/v1"),
        "asset at its version": get("/static/{name}", name="app.css", query={"v": css.version}),
        "asset, old version": get("/static/{name}", name="app.css", query={"v": "0" * 16}),
        "asset, not modified": get("/static/{name}", name="app.css", headers={"If-None-Match": css.etag}),
        "unknown file": get("/static/{name}", name="nope.js"),
    }


def test_every_response_carries_the_security_headers_of_a_page():
    for what, reply in every_kind_of_response().items():
        csp = reply.headers.get("content-security-policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ") if d}
        assert directives.get("script-src") == ["'self'"], what  # no inline script, no eval
        assert directives.get("default-src") == ["'none'"], what
        assert directives.get("frame-ancestors") == ["'none'"], what
        assert "unsafe" not in csp, what
        assert reply.headers.get("x-content-type-options") == "nosniff", what
        assert reply.headers.get("referrer-policy") == "no-referrer", what
        assert reply.headers.get("cache-control"), what


def test_caching_fits_each_response():
    replies = every_kind_of_response()
    assert replies["page"].headers["cache-control"] == "no-cache"  # a new deployment is seen at once
    assert replies["asset at its version"].headers["cache-control"] == "public, max-age=31536000, immutable"
    assert replies["asset, old version"].headers["cache-control"] == "no-cache"
    assert replies["unknown file"].headers["cache-control"] == "no-store"
    for what in ("page, not modified", "asset, not modified"):
        assert replies[what].status == 304 and replies[what].body == b"", what


def test_the_page_has_no_inline_script_handler_or_style():
    tags = parsed_page()
    assert "".join(tags.script_text).strip() == ""
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert len(scripts) == 2 and all(attrs.get("src") for attrs in scripts)
    for tag, attrs in tags.tags:
        assert tag != "style"
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name != "style", tag
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, name)


def test_every_script_and_stylesheet_is_served_with_the_integrity_the_page_names():
    tags = parsed_page()
    linked = [(attrs.get("src") or attrs.get("href"), attrs.get("integrity")) for tag, attrs in tags.tags
              if tag == "script" or (tag == "link" and attrs.get("rel") == "stylesheet")]
    assert {str(ref).split("?")[0] for ref, _ in linked} == {"static/tus.min.js", "static/app.js", "static/app.css"}
    for ref, integrity in linked:
        match = re.fullmatch(r"static/([\w.-]+)\?v=([0-9a-f]{16})", str(ref))
        assert match, ref
        reply = get("/static/{name}", name=match[1], query={"v": match[2]})
        assert reply.status == 200 and "immutable" in reply.headers["cache-control"]
        digest = "sha384-" + base64.b64encode(hashlib.sha384(reply.body).digest()).decode()
        assert integrity == digest, ref
        assert reply.body == (STATIC / match[1]).read_bytes()


def test_assets_are_served_with_their_types_and_within_the_payload_limits():
    types = {"app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml",
             "tus.min.js": "text/javascript", "tus-js-client.LICENSE.txt": "text/plain"}
    for name, content_type in types.items():
        reply = get("/static/{name}", name=name)
        assert reply.status == 200 and reply.headers["content-type"].startswith(content_type), name
    for path in STATIC.iterdir():
        assert path.stat().st_size < MAX_BODY_BYTES // 10, path.name


def test_a_page_asked_for_without_its_trailing_slash_is_sent_to_it():
    # Its URLs are relative to it: `.../v1` would load `.../static/app.js`, outside the stage.
    reply = get("/", stage_path="/v1")
    assert reply.status == 301 and reply.headers["location"] == "v1/"
    assert get("/", stage_path="/v1/").status == 200


def test_an_unknown_file_is_404_in_the_error_shape():
    reply = get("/static/{name}", name="index.html")  # the page is served at /, not as a file
    assert reply.status == 404 and reply.json()["error"]["code"] == "not_found"


def test_the_page_names_only_files_it_has(tmp_path):
    (tmp_path / "index.html").write_text('<script src="{{static:gone.js}}"></script>')
    with pytest.raises(ValueError, match=r"gone\.js"):
        Site(tmp_path)


def test_the_vendored_tus_js_client_matches_its_recorded_checksum():
    pins = vendor_tus.load_pins()
    assert pins["package"] == "tus-js-client" and re.fullmatch(r"\d+\.\d+\.\d+", pins["version"])
    assert set(pins["files"]) == {"tus.min.js", "tus.min.js.map", "tus-js-client.LICENSE.txt"}
    for name, entry in pins["files"].items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert vendor_tus.check(pins) == []
    assert "MIT License" in (STATIC / "tus-js-client.LICENSE.txt").read_text()


def test_a_vendored_file_that_changed_is_reported(tmp_path):
    pins = vendor_tus.load_pins()
    for name in pins["files"]:
        (tmp_path / name).write_bytes((STATIC / name).read_bytes())
    (tmp_path / "tus.min.js").write_text("/* edited by hand */")
    (tmp_path / "tus.min.js.map").unlink()
    problems = vendor_tus.check(pins, tmp_path)
    assert any("tus.min.js does not match" in p for p in problems)
    assert any("tus.min.js.map is missing" in p for p in problems)
