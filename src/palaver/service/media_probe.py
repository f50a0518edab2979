"""Reading training footage with FFmpeg (through PyAV): what it is, and a small thumbnail of it.

Every function here is CPU-bound and blocking: callers run them in a thread
(`asyncio.to_thread`) so the event loop keeps serving. Input is whatever an API
client pointed Palaver at, so nothing is trusted: a file FFmpeg cannot open
probes as `None`, an image's pixel size is read from its header and checked
(domain/training.py) before a single pixel is decoded, and a thumbnail decodes
only the first seconds of a video.
"""

from __future__ import annotations

import io
import os
import tempfile
from fractions import Fraction

import av
import av.error

from palaver.domain.training import ImageFacts, VideoFacts

THUMBNAIL_SECONDS = 3.0  # the clip `thumbnail_video_url` plays: the footage's first seconds
THUMBNAIL_VIDEO_SIDE = 320  # longest side of the clip, in pixels
THUMBNAIL_IMAGE_SIDE = 512  # longest side of an image replica's thumbnail
THUMBNAIL_MAX_FPS = 30


def probe_video(data: bytes) -> VideoFacts | None:
    """Container, codec, duration, frame rate and size; None when FFmpeg cannot open it at all."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            brand = str(container.metadata.get("major_brand", ""))
            if not container.streams.video:
                duration = (container.duration or 0) / av.time_base
                return VideoFacts(container.format.name, brand, None, duration, 0.0, 0, 0)
            stream = container.streams.video[0]
            duration = (container.duration or 0) / av.time_base
            if not duration and stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            codec = stream.codec_context.name
            return VideoFacts(container.format.name, brand, codec, duration, float(rate),
                              stream.codec_context.width, stream.codec_context.height)  # fmt: skip
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None


def probe_image(data: bytes) -> ImageFacts | None:
    """The picture's codec (png, mjpeg, ...) and pixel size, from its header; None when unreadable."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return None
            context = container.streams.video[0].codec_context
            return ImageFacts(context.name, context.width, context.height)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Scaled so the longer side is at most `side`, each side even (H.264's 4:2:0 needs it), at least 2."""
    scale = min(1.0, side / max(width, height, 1))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def video_thumbnail(data: bytes) -> bytes:
    """A silent H.264 MP4 of the video's first THUMBNAIL_SECONDS, at most THUMBNAIL_VIDEO_SIDE pixels wide or high."""
    with tempfile.TemporaryDirectory(prefix="palaver-thumb-") as folder:
        # A file, not memory: `faststart` (the index first, so a browser plays the clip before it has
        # all of it) rewrites the file once written, which needs a seekable target FFmpeg reopens.
        path = os.path.join(folder, "thumbnail.mp4")
        _encode_clip(data, path)
        with open(path, "rb") as clip:
            return clip.read()


def _encode_clip(data: bytes, path: str) -> None:
    with av.open(io.BytesIO(data), mode="r") as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        rate = min(rate, Fraction(THUMBNAIL_MAX_FPS))
        width, height = _fit(stream.codec_context.width, stream.codec_context.height, THUMBNAIL_VIDEO_SIDE)
        frames_wanted = max(1, int(THUMBNAIL_SECONDS * rate))
        with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as target:
            encoder = target.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.options = {"preset": "veryfast", "crf": "28"}
            written = 0
            for frame in source.decode(stream):
                if frame.time is not None and frame.time >= THUMBNAIL_SECONDS:
                    break
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts = written
                scaled.time_base = 1 / rate
                for packet in encoder.encode(scaled):
                    target.mux(packet)
                written += 1
                if written >= frames_wanted:
                    break
            for packet in encoder.encode():
                target.mux(packet)


def image_thumbnail(data: bytes) -> bytes:
    """The image as a JPEG, at most THUMBNAIL_IMAGE_SIDE pixels wide or high."""
    with av.open(io.BytesIO(data), mode="r") as source:
        frame = next(source.decode(video=0))
    width, height = _fit(frame.width, frame.height, THUMBNAIL_IMAGE_SIDE)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    scaled = frame.reformat(width=width, height=height, format="yuvj420p")
    scaled.pts = 0
    # One picture, one packet: a JPEG encoder's packet is the whole file.
    return b"".join(bytes(packet) for packet in [*encoder.encode(scaled), *encoder.encode(None)])
