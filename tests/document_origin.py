"""A local web origin for the documents tests: text, Markdown, CSV, HTML pages that link to each other,
a PDF built here, and the bad inputs (404, empty, oversized, unsupported), on 127.0.0.1.

Also `make_pdf`, a minimal PDF with one text line per entry, written by hand (objects, a content
stream with Helvetica text, the cross-reference table), so no PDF writer is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_pdf(lines: list[str]) -> bytes:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for i, line in enumerate(lines):
        if i:
            ops.append("0 -16 Td")
        ops.append(f"({escape(line)}) Tj")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF_LINES = ["Palaver handbook", "The warranty covers volcanic eruptions for twelve months."]
SITE = {
    "/site/": (
        "text/html",
        b"<html><head><title>Acme home</title><script>var hidden = 'scriptword';</script></head><body>"
        b"<nav>menu</nav><h1>Welcome to Acme</h1><p>Acme sells anvils.</p>"
        b"<a href='/site/a'>A</a> <a href='b'>B</a> <a href='/site/a#top'>A again</a> "
        b"<a href='https://elsewhere.example/x'>off site</a> <a href='mailto:x@example.com'>mail</a></body></html>",
    ),
    "/site/a": ("text/html", b"<html><body><p>Page A explains the refund policy.</p><a href='/site/c'>C</a></body></html>"),
    "/site/b": ("text/html", b"<html><body><p>Page B lists the opening hours.</p><a href='/site/'>home</a></body></html>"),
    "/site/c": ("text/html", b"<html><body><p>Page C is two levels deep: shipping rates.</p></body></html>"),
}
FILES: dict[str, tuple[str, bytes]] = {
    "/notes.txt": ("text/plain; charset=utf-8", b"The secret password is swordfish.\n\nSecond paragraph about llamas."),
    "/guide.md": ("text/markdown", b"# Guide\n\nUse the **blue** button to start the turbine."),
    "/table.csv": ("text/csv", b"product,price\nanvil,100\nrocket skates,250\n"),
    "/handbook.pdf": ("application/pdf", make_pdf(PDF_LINES)),
    "/download": ("application/octet-stream", make_pdf(["Sniffed portable document about zeppelins."])),
    "/empty.txt": ("text/plain", b""),
    "/blank.txt": ("text/plain", b"   \n\n  \t "),
    "/photo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    "/slides.pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", b"PK\x03\x04 zip"),
    "/broken.pdf": ("application/pdf", b"%PDF-1.4\nthis is not really a pdf"),
    **SITE,
}


class _Handler(BaseHTTPRequestHandler):
    big_bytes = 0  # set by the server: the size of /big.txt

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path == "/big.txt":
            size = self.server.big_bytes  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(size))
            self.end_headers()
            block = b"x" * 65536
            try:
                for start in range(0, size, len(block)):
                    self.wfile.write(block[: min(len(block), size - start)])
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if path not in FILES:
            self.send_response(404)
            self.send_header("content-length", "9")
            self.end_headers()
            self.wfile.write(b"not found")
            return
        media_type, body = FILES[path]
        self.server.hits.append(path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", media_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Origin:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self.server.hits  # type: ignore[attr-defined]


@contextmanager
def serve_origin(big_bytes: int = 51 * 1024 * 1024) -> Iterator[Origin]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    server.big_bytes = big_bytes  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Origin(server)
    finally:
        server.shutdown()
        server.server_close()
