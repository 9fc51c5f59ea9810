"""A real browser for the e2e tier: Debian's chromium, headless, driven by Playwright for Python.

Playwright's own browser download is never used (`playwright install` fetches from outside the package
registries): the browser is the system's chromium (`make test` installs it: infra/system/packages.sh), or
the one CHROMIUM names.
A missing browser fails the test loudly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

# Root in CI needs --no-sandbox; the rest keeps a headless browser quiet on a closed network.
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    given = os.environ.get("CHROMIUM")
    found = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        raise AssertionError("a real browser is required: install Debian's `chromium` (make test does), or set "
                             "CHROMIUM to a Chromium or Chrome executable")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
