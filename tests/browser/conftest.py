"""Browser tests: headless Debian Chromium driven by Playwright's sync API.

Fixtures, for every browser test (deployments' pages, rooms, the JavaScript drop-in):

* ``browser``      module-scoped Chromium from CHROMIUM (Debian's package, not a Playwright download). Its
                   version is printed. If it cannot start, every browser test fails (never skips): CI
                   must install it (.ci/run).
* ``page``         a fresh browser context and page per test. Requests to anything but this machine are
                   aborted and fail the test at teardown (no test may use the internet), and so does an
                   uncaught JavaScript error on the page.
* ``static_site``  a plain HTTP server on another port (so another origin than Palaver's) serving the pages
                   a test puts in ``static_site.pages`` (path -> HTML), for "a site that embeds Palaver".

The server under test is the usual ``server`` fixture (tests/conftest.py): a ``palaver serve`` subprocess,
so Playwright's event loop, in this thread, never shares one with it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

# The binary itself (Debian's wrapper script prints noise here); PALAVER_CHROMIUM points elsewhere.
CHROMIUM = os.environ.get("PALAVER_CHROMIUM", "/usr/lib/chromium/chromium")
# Nothing in the background: no component updates, no sync, no first-run pages (a closed network).
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_MS = 15_000


# Module-scoped, not session-scoped: while Playwright's sync API is open it keeps an event loop
# running in the main thread, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, request: pytest.FixtureRequest) -> Iterator[Browser]:
    launched, problem = None, ""
    try:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:
        problem = str(exc)
    if launched is None:  # a missing or broken Chromium fails the run; it must never pass silently
        pytest.fail(f"Chromium could not start from {CHROMIUM} (Debian package `chromium`): {problem}", pytrace=False)
    # Debian ships only its newest Chromium, so the version cannot be pinned: every run says which it was.
    line = f"browser tests: Chromium {launched.version} ({CHROMIUM})"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    else:
        print(line)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def local_only(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", local_only)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not outside, f"the page tried to reach the internet: {outside}"
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"


@dataclass
class StaticSite:
    url: str  # also its origin: `http://127.0.0.1:<port>`
    pages: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def static_site() -> Iterator[StaticSite]:
    site = StaticSite(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = site.pages.get(urlsplit(self.path).path)
            data = (body or "<!doctype html><title>Not found</title>").encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="static-site", daemon=True)
    thread.start()
    yield site
    httpd.shutdown()
    httpd.server_close()
