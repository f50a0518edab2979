"""Headless Chromium for the browser tests: Playwright's sync API driving the system's Chromium.

Debian's `chromium` package, not `playwright install` (which downloads a browser):
see ../shared/reference/browser-tests.md. A Chromium that cannot start fails the
tests, never skips them. The server under test is the usual `palaver serve`
subprocess (the `server` and `client` fixtures of tests/conftest.py), so the
browser tests run once per storage backend like the HTTP suites.

Fixtures:

* ``browser``  session-scoped Chromium (its version is written to the test output)
* ``page``     a fresh context and page per test, closed after it; an uncaught
               JavaScript error on the page fails the test
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Error, Page, sync_playwright

CHROMIUM = os.environ.get("PALAVER_CHROMIUM", "/usr/lib/chromium/chromium")
# No network of its own: no component updates, sync or first-run pages while tests run.
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium did not start from {CHROMIUM} (apt-get install chromium): {exc}", pytrace=False)
        # Shown even when output is captured: Debian ships only its newest Chromium, so it cannot be pinned.
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nbrowser: Chromium {chromium.version} ({CHROMIUM})")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield new_page
    context.close()
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"
