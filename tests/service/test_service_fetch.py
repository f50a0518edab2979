"""Downloads under the private-address guard: refused targets, redirects, size caps, HTTP errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from palaver.delivery.fetch import FetchFailed, fetch


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.startswith("/redirect/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("location", f"/redirect/{n - 1}" if n > 0 else "/doc.txt")
            self.end_headers()
            return
        if self.path == "/doc.txt":
            body = b"hello knowledge"
            self.send_response(200)
            self.send_header("content-type", "text/plain; charset=utf-8")
        elif self.path == "/big":
            body = b"x" * 100_000
            self.send_response(200)
        elif self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"2000\r\n" + b"y" * 0x2000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        else:
            body = b"missing"
            self.send_response(404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _fetch(url: str, **kwargs) -> object:
    kwargs.setdefault("allow_private", True)
    kwargs.setdefault("max_bytes", 50_000)
    return asyncio.run(fetch(url, **kwargs))


def test_fetches_with_its_media_type(origin: str) -> None:
    got = _fetch(f"{origin}/doc.txt")
    assert got.content == b"hello knowledge" and got.content_type == "text/plain" and got.status == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_addresses_are_refused_unless_allowed(origin: str, host: str) -> None:
    port = origin.rsplit(":", 1)[1]
    with pytest.raises(FetchFailed) as exc:
        _fetch(f"http://{host}:{port}/doc.txt", allow_private=False)
    assert exc.value.reason == "refused" and "non-public" in exc.value.message


def test_redirects_are_followed_and_bounded(origin: str) -> None:
    assert _fetch(f"{origin}/redirect/3").url.endswith("/doc.txt")
    with pytest.raises(FetchFailed) as exc:
        _fetch(f"{origin}/redirect/9")
    assert exc.value.reason == "http_error" and "redirects" in exc.value.message


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_size_cap_is_enforced_while_reading(origin: str, path: str) -> None:
    with pytest.raises(FetchFailed) as exc:
        _fetch(origin + path)
    assert exc.value.reason == "too_large"


def test_http_errors_and_bad_schemes(origin: str) -> None:
    with pytest.raises(FetchFailed) as exc:
        _fetch(f"{origin}/nothing-here")
    assert exc.value.reason == "http_error" and "404" in exc.value.message
    for url in ("ftp://example.com/x", "file:///etc/passwd", "http://2130706433/"):
        with pytest.raises(FetchFailed) as exc:
            _fetch(url, allow_private=False)
        assert exc.value.reason == "refused"
