"""Small media files made with PyAV for the training tests, and a local HTTP origin that serves them.

Imported by tests/service/test_service_replica_training.py and tests/api/test_replica_training.py
(a module, not a fixture file, like webhook_receiver.py). Every file is made in memory in
well under a second: 64x64 pixels, a few grey levels, the fastest encoder settings.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av


def video(seconds: float = 61.0, fps: int = 25, codec: str = "libx264", size: int = 64, fmt: str = "mp4") -> bytes:
    """A silent video: H.264 in MP4 by default (what training accepts); `codec="mpeg4"` or
    `"libvpx-vp9"` for a codec it refuses, a short or slow one for the duration and fps rules."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame(size, size, "yuv420p")
            for n, plane in enumerate(frame.planes):
                plane.update(bytes([(i * 3 + n * 60) % 256]) * plane.buffer_size)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def still(codec: str = "png", width: int = 200, height: int = 160) -> bytes:
    """One picture: `png`, `mjpeg` (a JPEG) or `gif` (a format training refuses)."""
    pix = {"png": "rgb24", "mjpeg": "yuvj420p", "gif": "rgb8"}[codec]
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = width, height, pix
    context.time_base = Fraction(1, 1)
    frame = av.VideoFrame(width, height, "rgb24")
    size = frame.planes[0].buffer_size  # rows are padded: fill the whole buffer
    frame.planes[0].update((bytes([90, 140, 200]) * (size // 3 + 1))[:size])
    frame = frame.reformat(format=pix)
    frame.pts = 0
    return b"".join(bytes(p) for p in [*context.encode(frame), *context.encode(None)])


@dataclass
class Origin:
    """Files by path; `gets` lists every path requested, in order."""

    server: ThreadingHTTPServer
    files: dict[str, bytes] = field(default_factory=dict)
    gets: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_origin() -> Origin:
    holder: dict[str, Origin] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            origin = holder["o"]
            origin.gets.append(self.path)
            body = origin.files.get(self.path)
            self.send_response(200 if body is not None else 404)
            body = body if body is not None else b"not here"
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["o"] = Origin(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["o"]
