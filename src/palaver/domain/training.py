"""Replica training: what a create request may say, what footage must be, and how it fails.

Pure rules, no I/O. The service (service/replica_training.py) downloads and
probes the footage (service/media_probe.py) and asks these functions whether it
passes; a failure is a `TrainingError` whose `error_type` is the one Tavus's
error catalogue uses (`download_link`, `file_size`, `video_format`,
`video_codec`, `video_duration`, `video_fps`), plus `image_format` and
`image_size` for image training, which the catalogue does not name.

Tavus's documented requirements (reference 15): an MP4 with H.264 video, at
least one minute long, at least 25 frames per second, under 750 MB. Images are
JPEG or PNG.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from palaver.domain.catalog import STOCK_REPLICAS
from palaver.domain.errors import ValidationFailed
from palaver.domain.vocabulary import Vocabulary

MIN_DURATION_S = 60.0
MIN_FPS = 25.0
MAX_VIDEO_BYTES = 750 * 1000 * 1000  # "under 750MB": decimal megabytes, the stricter reading
MAX_IMAGE_BYTES = 20 * 1000 * 1000
MAX_CONSENT_BYTES = MAX_VIDEO_BYTES
MIN_IMAGE_SIDE = 64  # below this there is no face to learn; above MAX, a decompression bomb
MAX_IMAGE_SIDE = 8192
MAX_URL = 2048
MAX_NAME = 200
MODELS = ("phoenix-4", "phoenix-3")
DEFAULT_MODEL = "phoenix-4"
# The demuxer FFmpeg reports for MP4 (and its QuickTime relatives, told apart by the brand).
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
QUICKTIME_BRAND = "qt"
IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}

NEITHER = "Either train_video_url or train_image_url must be provided."
BOTH = "Provide either train_video_url or train_image_url, not both."

# Where the job has got to, as `training_progress` shows it.
PROGRESS_STARTED = "0/100"
PROGRESS_DOWNLOADED = "30/100"
PROGRESS_CHECKED = "60/100"
PROGRESS_THUMBNAIL = "90/100"
PROGRESS_DONE = "100/100"


def voice_slug(replica_name: str) -> str:
    """A stock replica's voice name: the first word of its name, lower-case (`Lucy - Home` -> `lucy`)."""
    return replica_name.split()[0].lower() if replica_name.split() else ""


# Named stock replicas only: "Stock replica (...)" has no person's name to select a voice by.
VOICE_NAMES: frozenset[str] = frozenset(
    voice_slug(r.replica_name) for r in STOCK_REPLICAS.values() if not r.replica_name.lower().startswith("stock")
)


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """A create request once checked; stored (as `_training`) with the replica, never shown."""

    source: str  # video | image
    train_url: str
    consent_video_url: str | None
    callback_url: str | None
    voice_name: str | None
    model_name: str
    background_green_screen: bool
    auto_fix_training_image: bool
    media_key: str  # where the thumbnail is stored, chosen up front so a job run again overwrites it

    def stored(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "train_url": self.train_url,
            "consent_video_url": self.consent_video_url,
            "callback_url": self.callback_url,
            "voice_name": self.voice_name,
            "background_green_screen": self.background_green_screen,
            "auto_fix_training_image": self.auto_fix_training_image,
            "media_key": self.media_key,
        }

    @staticmethod
    def from_stored(stored: dict[str, Any], model_name: str) -> TrainingRequest:
        return TrainingRequest(
            stored["source"],
            stored["train_url"],
            stored.get("consent_video_url"),
            stored.get("callback_url"),
            stored.get("voice_name"),
            model_name,
            bool(stored.get("background_green_screen")),
            bool(stored.get("auto_fix_training_image")),
            stored["media_key"],
        )


def new_media_key(source: str) -> str:
    """An unguessable file name (128 random bits): the key of the thumbnail and the last part of its URL."""
    return secrets.token_urlsafe(16) + (".jpg" if source == "image" else ".mp4")


def parse_request(fields: dict[str, Any], vocabulary: Vocabulary) -> tuple[TrainingRequest, str | None]:
    """The checked request and the `replica_name` given (if any), or ValidationFailed.

    `fields` are in the canonical (replica) names already. An empty string reads as
    absent for the optional fields, as clients that send every field with "" expect.
    """
    video = _url(fields, "train_video_url")
    image = _url(fields, "train_image_url")
    if video is None and image is None:
        raise ValidationFailed(NEITHER)
    if video is not None and image is not None:
        raise ValidationFailed(BOTH)
    voice = _text(fields, "voice_name", 64)
    if voice is not None:
        voice = voice.lower()
        if voice not in VOICE_NAMES:
            raise ValidationFailed(f"Invalid voice_name {voice!r}: use a voice from GET /v2/voices, such as 'anna'")
    elif image is not None:
        raise ValidationFailed("voice_name is required with train_image_url")
    model = fields.get("model_name", DEFAULT_MODEL)
    if model is None:
        model = DEFAULT_MODEL
    if model not in MODELS:
        raise ValidationFailed(f"model_name must be one of: {', '.join(MODELS)}")
    properties = fields.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ValidationFailed("properties must be an object")
    name_field = vocabulary.name("replica_name")
    name = _text(fields, "replica_name", MAX_NAME, shown=name_field)
    source = "video" if video is not None else "image"
    request = TrainingRequest(
        source=source,
        train_url=video or image or "",
        consent_video_url=_url(fields, "consent_video_url"),
        callback_url=_url(fields, "callback_url"),
        voice_name=voice,
        model_name=model,
        background_green_screen=_flag(properties, "background_green_screen", "properties.background_green_screen"),
        auto_fix_training_image=_flag(fields, "auto_fix_training_image", "auto_fix_training_image"),
        media_key=new_media_key(source),
    )
    return request, name


def _text(fields: dict[str, Any], key: str, limit: int, *, shown: str | None = None) -> str | None:
    value = fields.get(key)
    shown = shown or key
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{shown} must be a string")
    if len(value) > limit:
        raise ValidationFailed(f"{shown} must be at most {limit} characters")
    return value


def _url(fields: dict[str, Any], key: str) -> str | None:
    value = _text(fields, key, MAX_URL)
    if value is None:
        return None
    parts = urlsplit(value)
    bad_port = False
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        bad_port = True
    if parts.scheme not in ("http", "https") or not parts.hostname or bad_port or any(c <= " " for c in value):
        raise ValidationFailed(f"{key} must be a well-formed http(s) URL")
    return value


def _flag(fields: dict[str, Any], key: str, shown: str) -> bool:
    value = fields.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationFailed(f"{shown} must be a boolean")
    return value


# footage rules ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingError:
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class VideoFacts:
    """What probing a video found (service/media_probe.py)."""

    container: str  # FFmpeg's demuxer name
    brand: str  # the MP4 major brand, "" when none
    codec: str | None  # None: no video stream at all
    duration_s: float
    fps: float
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ImageFacts:
    format: str  # FFmpeg's codec name of the single picture: png | mjpeg | ...
    width: int
    height: int


def unreadable(what: str, error_type: str) -> TrainingError:
    return TrainingError(error_type, f"The {what} could not be read as a media file.")


def download_failed(field: str, reason: str, detail: str, limit: int) -> TrainingError:
    """A failed download as the catalogue names it: too large is `file_size`, anything else `download_link`."""
    if reason == "too_large":
        return TrainingError("file_size", f"The file at {field} is too large: it must be under {limit // 10**6} MB.")
    return TrainingError("download_link", f"The file at {field} could not be downloaded ({reason}): {detail}")


def check_video(facts: VideoFacts, field: str = "train_video_url", *, training: bool = True) -> TrainingError | None:
    """The first rule the video breaks; the consent clip (`training=False`) needs only to be an H.264 MP4."""
    if facts.container != MP4_DEMUXER or facts.brand.strip() == QUICKTIME_BRAND:
        return TrainingError("video_format", f"The video at {field} must be an MP4 file (found {facts.container}).")
    if facts.codec is None:
        return TrainingError("video_format", f"The file at {field} has no video stream.")
    if facts.codec != "h264":
        return TrainingError("video_codec", f"The video at {field} must be encoded with H.264 (found {facts.codec}).")
    if not training:
        return None
    if facts.duration_s < MIN_DURATION_S:
        return TrainingError(
            "video_duration",
            f"The video at {field} must be at least 1 minute long (found {facts.duration_s:.1f} seconds).",
        )
    if facts.fps < MIN_FPS - 0.01:  # 24.999 from a rounded time base is 25
        return TrainingError(
            "video_fps",
            f"The video at {field} must have at least {MIN_FPS:g} frames per second (found {facts.fps:.2f}).",
        )
    return None


def check_image(facts: ImageFacts) -> TrainingError | None:
    if facts.format not in ("png", "mjpeg"):
        found = facts.format
        return TrainingError("image_format", f"The image at train_image_url must be a JPEG or PNG (found {found}).")
    smallest, largest = min(facts.width, facts.height), max(facts.width, facts.height)
    if smallest < MIN_IMAGE_SIDE or largest > MAX_IMAGE_SIDE:
        return TrainingError(
            "image_size",
            f"The image at train_image_url must be between {MIN_IMAGE_SIDE} and {MAX_IMAGE_SIDE} pixels on each side "
            f"(found {facts.width}x{facts.height}).",
        )
    return None


def callback_body(replica_id: str, error_message: str | None) -> dict[str, Any]:
    """Reference 4.3: `ready` (not `completed`, which GET shows) or `error` with the message.

    Always `replica_id`, whichever vocabulary created it: the one documented body.
    """
    if error_message is None:
        return {"replica_id": replica_id, "status": "ready"}
    return {"replica_id": replica_id, "status": "error", "error_message": error_message}


def trained_document(base: dict[str, Any], request: TrainingRequest) -> dict[str, Any]:
    """A replica being trained: `replica_document`'s fields with `error_type` after `error_message`
    (null until training fails), and the request under `_training` (never shown)."""
    document: dict[str, Any] = {}
    for key, value in base.items():
        document[key] = value
        if key == "error_message":
            document["error_type"] = None
    document["_training"] = request.stored()
    return document
