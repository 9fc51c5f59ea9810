"""The web page on the deployed template, in a real browser (Debian's chromium, headless, via Playwright):
a new user registers, drops two videos, watches them convert, downloads one MP3 (checked with ffprobe),
deletes the other and logs out; a second user, using the keyboard only, sees none of it. An upload cut
off by a reload continues from where it stopped when the same file is chosen again.

A screenshot of the finished page is written to .vid2mp3/screenshots/ (docs/page.png is a copy of it).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, expect

from tests.support.api import PASSWORD, Api, new_email
from tests.support.browser import chromium
from tests.support.media import generate_media, large_video, layer_binaries

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".vid2mp3" / "screenshots"
CONVERT_TIMEOUT_MS = 180_000
COLD_START_MS = 60_000  # the first call of a function the emulator has not started yet
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Whatever the page shows after a request may wait for a function the emulator starts cold.
    expect.set_options(timeout=COLD_START_MS)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short videos with the names a user would give them."""
    media = generate_media(tmp_path_factory.mktemp("page-media"))
    folder = media["mp4"].parent
    holiday, concert, notes = folder / "holiday.mp4", folder / "concert.mkv", folder / "notes.mp4"
    holiday.write_bytes(media["mp4"].read_bytes())
    concert.write_bytes(media["mkv"].read_bytes())
    notes.write_bytes(media["text"].read_bytes())  # text, named like a video
    return {"holiday": holiday, "concert": concert, "notes": notes}


class Visit:
    """One browser tab on the page, noting what a user would not see but must hold: script errors and
    CSP violations (the console), and every URL the page asked for."""

    def __init__(self, context: BrowserContext, page_url: str) -> None:
        context.set_default_timeout(COLD_START_MS)
        self.page: Page = context.new_page()
        self.page_url = page_url
        self.errors: list[str] = []
        self.requests: list[Request] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("request", lambda request: self.requests.append(request))
        # File choosers are intercepted from the start: Playwright turns interception on when the first
        # listener is added, and a chooser opened before that is lost (expect_file_chooser races it).
        self.page.on("filechooser", lambda chooser: None)

    def _console(self, message: ConsoleMessage) -> None:
        # 409 and 423 are how tus tells a client that resumes to ask where the upload stands (a part cut
        # off by a reload may still be stored); tus-js-client does, and continues.
        if message.type == "error" and not re.search(r"status of (409|423) ", message.text):
            self.errors.append(message.text)

    def open(self) -> dict[str, str]:
        response = self.page.goto(self.page_url)
        assert response is not None and response.status == 200
        return response.headers

    def register(self, email: str) -> None:
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Create account").click()
        expect(self.page.locator("#who")).to_have_text(email)

    def row(self, filename: str) -> Any:
        return self.page.locator("li.job", has=self.page.locator(".name", has_text=filename))

    def drop(self, *files: Path) -> None:
        """Drop files on the drop zone, as a user dragging them from a file manager does."""
        payload = [{"name": f.name, "type": "video/x-matroska" if f.suffix == ".mkv" else "video/mp4",
                    "data": base64.b64encode(f.read_bytes()).decode()} for f in files]
        transfer = self.page.evaluate_handle(
            """(files) => {
                const transfer = new DataTransfer()
                for (const f of files) {
                    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))
                    transfer.items.add(new File([bytes], f.name, { type: f.type }))
                }
                return transfer
            }""", payload)
        for event in ("dragenter", "dragover", "drop"):
            self.page.dispatch_event("#drop", event, {"dataTransfer": transfer})

    def choose_with_keyboard(self, file: Path) -> None:
        self.page.get_by_role("button", name="Choose videos").focus()
        with self.page.expect_file_chooser() as chooser:
            self.page.keyboard.press("Enter")
        chooser.value.set_files(str(file))

    def stored_secrets(self) -> str:
        """Everything this origin keeps in the browser's storage."""
        return str(self.page.evaluate("() => JSON.stringify([{...sessionStorage}, {...localStorage}])"))


def elsewhere() -> dict[str, Any]:
    """A browser context that comes from an address of its own, as different visitors do: the emulator
    takes the source address from X-Forwarded-For (registrations are limited per address and hour)."""
    return {"extra_http_headers": {"X-Forwarded-For": Api("http://unused").source_ip}}


def ffprobe(path: Path) -> dict[str, Any]:
    _, probe = layer_binaries()
    out = subprocess.run([probe, "-v", "error", "-show_entries", "format=duration,format_name:stream=codec_name",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_two_videos_dropped_converted_one_downloaded_one_deleted_and_a_second_user_sees_none(
        browser, api_url, videos, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 960, "height": 900}, **elsewhere())
    visit = Visit(context, f"{api_url}/")
    headers = visit.open()
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    page = visit.page
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()

    alice = f"alice-{uuid.uuid4().hex[:8]}@example.com"
    visit.register(alice)
    expect(page.get_by_text("No files yet")).to_be_visible()

    visit.drop(videos["holiday"], videos["concert"], videos["notes"])
    holiday, concert, notes = visit.row("holiday.mp4"), visit.row("concert.mkv"), visit.row("notes.mp4")
    for row in (holiday, concert):
        expect(row).to_have_attribute("data-status", "done", timeout=CONVERT_TIMEOUT_MS)
        expect(row.locator(".status")).to_contain_text("MP3 ready")
        expect(row.get_by_role("button", name="Download MP3")).to_be_visible()
    size = videos["holiday"].stat().st_size
    assert 1000 <= size < 100_000
    expect(holiday.locator(".facts")).to_have_text(f"{size / 1000:.1f} kB · 0:03")  # the video's size and duration
    expect(notes).to_have_attribute("data-status", "failed", timeout=CONVERT_TIMEOUT_MS)
    expect(notes.locator(".status")).to_contain_text("not an audio or video file")  # the reason, in words
    expect(notes.get_by_role("button", name="Download MP3")).to_be_hidden()
    assert page.locator("li.job").count() == 3

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page.png"), full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider than the screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(SCREENSHOTS / "page-360.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download MP3 of holiday.mp4").click()
    download = download_info.value
    assert download.suggested_filename == "holiday.mp3"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    probed = ffprobe(saved)
    assert probed["format"]["format_name"] == "mp3" and [s["codec_name"] for s in probed["streams"]] == ["mp3"]
    assert abs(float(probed["format"]["duration"]) - 3.0) < 0.3

    page.once("dialog", lambda dialog: dialog.accept())  # "Delete concert.mkv and its MP3?"
    concert.get_by_role("button", name="Delete").click()
    expect(concert).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("Deleted concert.mkv")
    api = Api(api_url)
    token = str(api.login(alice).body["access_token"])
    kept = {job["filename"] for job in api.request("GET", "/videos", token=token).body["items"]}
    assert kept == {"holiday.mp4", "notes.mp4"}
    kept_id = holiday.get_attribute("data-id")

    assert token.split(".")[0] in visit.stored_secrets()  # logged in: the page's token is in sessionStorage
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in or create an account")).to_be_visible()
    assert "eyJ" not in visit.stored_secrets()  # no token left behind
    expect(page.locator("li.job")).to_have_count(0)

    # A second user, with the keyboard only: after logging out the email field has the focus.
    bob = new_email()
    page.keyboard.type(bob)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")  # Log in
    page.keyboard.press("Tab")  # Create account
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_have_text(bob)
    expect(page.get_by_text("No files yet")).to_be_visible()
    assert page.locator("li.job").count() == 0
    bob_token = str(api.login(bob).body["access_token"])
    assert api.request("GET", "/videos", token=bob_token).body["items"] == []
    assert api.request("GET", f"/videos/{kept_id}", token=bob_token).status == 404

    # Never a token in a URL (the page's requests, the download link); no script error, no CSP violation.
    urls = [r.url for r in visit.requests] + [download.url]
    assert not [u for u in urls if "eyJ" in u], urls  # a JWT starts with eyJ (base64 of '{"')
    assert visit.errors == [], visit.errors
    context.close()


def test_an_upload_cut_off_by_a_reload_continues_when_the_same_file_is_chosen_again(browser, api_url, tmp_path):
    video = large_video(tmp_path / "lecture.mkv", seconds=20, megabytes=30)  # 8 parts of 4 MiB
    size = video.stat().st_size
    context = browser.new_context(viewport={"width": 960, "height": 900}, **elsewhere())
    visit = Visit(context, f"{api_url}/")
    visit.open()
    page = visit.page
    visit.register(new_email())

    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204):
        visit.choose_with_keyboard(video)  # the first 4 MiB part is stored ...
    page.reload()  # ... and the page goes away in the middle of the upload
    visit.requests.clear()

    expect(page.locator("#who")).to_be_visible()  # still logged in (this tab's session)
    expect(page.locator("#unfinished")).to_contain_text("lecture.mkv")
    visit.choose_with_keyboard(video)
    row = visit.row("lecture.mkv")
    expect(row.locator(".status")).to_contain_text("continued from", timeout=30_000)
    expect(row).to_have_attribute("data-status", "done", timeout=CONVERT_TIMEOUT_MS)
    expect(page.locator("#unfinished")).to_be_hidden()

    uploads = [r for r in visit.requests if "/uploads" in r.url]
    assert not [r for r in uploads if r.method == "POST"], "a new upload was started instead of resuming"
    assert uploads and uploads[0].method == "HEAD"  # where the upload stands
    patches = [r for r in uploads if r.method == "PATCH"]
    offsets = [int(r.headers["upload-offset"]) for r in patches]
    assert offsets and offsets[0] >= 4 * MIB, offsets  # continued after what was already there
    stored = [r for r in patches if (reply := r.response()) is not None and reply.status == 204]
    assert len(stored) < -(-size // (4 * MIB))  # fewer parts than the whole file

    job_id = row.get_attribute("data-id")
    api = Api(api_url)
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('vid2mp3.session')).token")
    job = api.request("GET", f"/videos/{job_id}", token=token).body
    assert job["size"] == size and job["status"] == "done"
    assert abs(job["mp3"]["duration_s"] - 20.0) < 0.5  # the whole file arrived, in order
    assert visit.errors == [], visit.errors
    context.close()


def test_an_upload_cancelled_or_discarded_leaves_nothing_behind(browser, api_url, tmp_path):
    video = large_video(tmp_path / "rehearsal.mkv", seconds=10, megabytes=30)
    context = browser.new_context(viewport={"width": 960, "height": 900}, **elsewhere())
    visit = Visit(context, f"{api_url}/")
    visit.open()
    page = visit.page
    visit.register(new_email())
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('vid2mp3.session')).token")
    api = Api(api_url)

    def upload_url(response: Any) -> str:
        return str(response.request.url).removeprefix(api_url)

    def held_by_the_service(path: str) -> int:
        return api.request("HEAD", path, token=token, headers={"Tus-Resumable": "1.0.0"}).status

    # Cancel, while it goes up.
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204) as first_part:
        visit.choose_with_keyboard(video)
    cancelled = upload_url(first_part.value)
    assert held_by_the_service(cancelled) == 200
    visit.row("rehearsal.mkv").get_by_role("button", name="Cancel upload of rehearsal.mkv").click()
    expect(visit.row("rehearsal.mkv")).to_have_count(0)
    deadline = time.monotonic() + COLD_START_MS / 1000  # the termination request may still be on its way
    while held_by_the_service(cancelled) != 404:
        assert time.monotonic() < deadline, "the cancelled upload is still held by the service"
        time.sleep(0.2)

    # Discard, after the page went away in the middle of it.
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204) as first_part:
        visit.choose_with_keyboard(video)
    discarded = upload_url(first_part.value)
    assert discarded != cancelled  # a new upload: the cancelled one was forgotten
    page.reload()
    page.get_by_role("button", name="Discard the unfinished upload of rehearsal.mkv").click()
    expect(page.locator("#unfinished")).to_be_hidden()
    assert held_by_the_service(discarded) == 404
    assert "tus::" not in visit.stored_secrets()  # nothing left to resume
    assert visit.errors == [], visit.errors
    context.close()
