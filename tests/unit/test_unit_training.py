"""The training rules, pure: what a create request may say and what footage must be."""

from __future__ import annotations

import pytest

from palaver.domain.errors import ValidationFailed
from palaver.domain.replicas import FACE, REPLICA
from palaver.domain.training import (
    BOTH,
    NEITHER,
    VOICE_NAMES,
    ImageFacts,
    VideoFacts,
    check_image,
    check_video,
    download_failed,
    parse_request,
    voice_slug,
)

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
GOOD = VideoFacts(MP4, "isom", "h264", 61.0, 25.0, 1280, 720)
URL = "https://cdn.example/v.mp4"


def refused(body: dict, vocabulary=REPLICA) -> str:
    with pytest.raises(ValidationFailed) as exc:
        parse_request(body, vocabulary)
    return exc.value.message


def test_voice_names_are_the_named_stock_replicas_first_words() -> None:
    assert voice_slug("Lucy - Home") == "lucy" and voice_slug("Gloria (green screen)") == "gloria"
    assert {"anna", "nathan", "charlie", "lucy", "gloria", "santa"} <= VOICE_NAMES
    assert "stock" not in VOICE_NAMES and all(v == v.lower() and " " not in v for v in VOICE_NAMES)


def test_exactly_one_source() -> None:
    assert refused({}) == NEITHER == "Either train_video_url or train_image_url must be provided."
    assert refused({"train_video_url": "", "train_image_url": None}) == NEITHER
    assert refused({"train_video_url": URL, "train_image_url": URL, "voice_name": "anna"}) == BOTH


def test_defaults_and_fields() -> None:
    request, name = parse_request({"train_video_url": URL}, REPLICA)
    assert (request.source, request.train_url, request.model_name, name) == ("video", URL, "phoenix-4", None)
    assert request.media_key.endswith(".mp4") and len(request.media_key) >= 22
    request, name = parse_request(
        {"train_image_url": URL, "voice_name": "ANNA", "model_name": "phoenix-3", "replica_name": "Rio",
         "properties": {"background_green_screen": True}, "auto_fix_training_image": True,
         "callback_url": "http://hooks.example/x", "consent_video_url": URL},
        REPLICA,
    )  # fmt: skip
    assert (request.source, request.voice_name, request.model_name, name) == ("image", "anna", "phoenix-3", "Rio")
    assert request.background_green_screen and request.auto_fix_training_image
    assert request.media_key.endswith(".jpg") and request.stored()["callback_url"] == "http://hooks.example/x"
    assert parse_request({"train_video_url": URL}, REPLICA)[0].media_key != request.media_key


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"train_image_url": URL}, "voice_name is required with train_image_url"),
        ({"train_video_url": URL, "voice_name": "nobody"}, "Invalid voice_name 'nobody'"),
        ({"train_video_url": URL, "voice_name": "stock"}, "Invalid voice_name"),
        ({"train_video_url": URL, "voice_name": 3}, "voice_name must be a string"),
        ({"train_video_url": "ftp://x/v.mp4"}, "train_video_url must be a well-formed http(s) URL"),
        ({"train_video_url": "https://"}, "well-formed"),
        ({"train_video_url": "http://x:99999/"}, "well-formed"),
        ({"train_video_url": "http://x/a b"}, "well-formed"),
        ({"train_video_url": "https://x/" + "a" * 3000}, "at most 2048"),
        ({"train_video_url": 7}, "train_video_url must be a string"),
        ({"train_video_url": URL, "callback_url": "javascript:alert(1)"}, "callback_url must be a well-formed"),
        ({"train_video_url": URL, "consent_video_url": "file:///etc/passwd"}, "consent_video_url must be"),
        ({"train_video_url": URL, "model_name": "phoenix-2"}, "model_name must be one of: phoenix-4, phoenix-3"),
        ({"train_video_url": URL, "model_name": ""}, "model_name must be one of"),
        ({"train_video_url": URL, "model_name": ["phoenix-4"]}, "model_name must be one of"),
        ({"train_video_url": URL, "properties": []}, "properties must be an object"),
        ({"train_video_url": URL, "properties": {"background_green_screen": "yes"}}, "must be a boolean"),
        ({"train_video_url": URL, "auto_fix_training_image": 1}, "auto_fix_training_image must be a boolean"),
        ({"train_video_url": URL, "replica_name": "x" * 201}, "replica_name must be at most 200 characters"),
        ({"train_video_url": URL, "replica_name": {}}, "replica_name must be a string"),
    ],
)
def test_refusals(body, words) -> None:
    assert words in refused(body)


def test_face_vocabulary_names_its_own_field() -> None:
    assert "face_name must be at most" in refused(FACE.parse({"train_video_url": URL, "face_name": "x" * 201}), FACE)
    assert parse_request(FACE.parse({"train_video_url": URL, "face_name": "Mine"}), FACE)[1] == "Mine"


@pytest.mark.parametrize(
    ("changes", "error_type"),
    [
        ({}, None),
        ({"container": "matroska,webm"}, "video_format"),
        ({"brand": "qt  "}, "video_format"),
        ({"codec": None}, "video_format"),
        ({"codec": "hevc"}, "video_codec"),
        ({"duration_s": 59.9}, "video_duration"),
        ({"duration_s": 60.0}, None),
        ({"fps": 24.0}, "video_fps"),
        ({"fps": 24.995}, None),
        ({"fps": 60.0}, None),
    ],
)
def test_video_rules(changes, error_type) -> None:
    facts = VideoFacts(**{f: changes.get(f, getattr(GOOD, f)) for f in GOOD.__slots__})
    problem = check_video(facts)
    assert (problem.error_type if problem else None) == error_type
    if problem:
        assert "train_video_url" in problem.message


def test_consent_clip_needs_only_h264_mp4() -> None:
    short = VideoFacts(MP4, "isom", "h264", 4.0, 15.0, 64, 64)
    assert check_video(short, "consent_video_url", training=False) is None
    problem = check_video(VideoFacts(MP4, "isom", "vp9", 4.0, 30.0, 64, 64), "consent_video_url", training=False)
    assert problem is not None and problem.error_type == "video_codec" and "consent_video_url" in problem.message


@pytest.mark.parametrize(
    ("facts", "error_type"),
    [
        (ImageFacts("png", 512, 512), None),
        (ImageFacts("mjpeg", 64, 8192), None),
        (ImageFacts("gif", 512, 512), "image_format"),
        (ImageFacts("webp", 512, 512), "image_format"),
        (ImageFacts("png", 63, 512), "image_size"),
        (ImageFacts("png", 512, 8193), "image_size"),
    ],
)
def test_image_rules(facts, error_type) -> None:
    problem = check_image(facts)
    assert (problem.error_type if problem else None) == error_type


def test_download_failures() -> None:
    assert download_failed("train_video_url", "too_large", "x", 750_000_000).error_type == "file_size"
    assert "under 750 MB" in download_failed("train_video_url", "too_large", "x", 750_000_000).message
    for reason in ("refused", "unreachable", "http_error", "timeout"):
        problem = download_failed("train_image_url", reason, "detail", 1)
        assert problem.error_type == "download_link" and "train_image_url" in problem.message
