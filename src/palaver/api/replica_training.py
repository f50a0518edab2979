"""`POST /v2/replicas` and `POST /v2/faces` (train a replica), and `GET /media/{key}` (its thumbnail).

The reads, the rename and the delete of replicas are in api/replicas.py. The
media route is public, like `/rooms/...`: a client shows `thumbnail_video_url`
in a `<video>` tag, which sends no API key, so the URL itself (an unguessable
token) is what grants access.
"""

# No `from __future__ import annotations`: the routes are closures whose parameter
# annotations FastAPI evaluates at registration (as in api/replicas.py).
import re
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_object, request_body_schema
from palaver.api.resources import UNAUTHORIZED, route
from palaver.api.schemas import ErrorBody
from palaver.domain.replicas import FACE, REPLICA
from palaver.domain.training import MAX_NAME, MAX_URL
from palaver.domain.vocabulary import Vocabulary
from palaver.service.replica_training import ReplicaTraining

MEDIA_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}\.(?:mp4|jpg)")
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
CACHE = "public, max-age=300"  # short: a hard delete must take the file away soon, from caches too


class TrainingProperties(BaseModel):
    background_green_screen: bool | None = Field(None, description="Train with a green-screen background.")


class _TrainingBody(BaseModel):
    train_video_url: str | None = Field(
        None, max_length=MAX_URL, description="http(s) link to an MP4 (H.264, at least 1 minute, 25 fps, < 750 MB)."
    )
    train_image_url: str | None = Field(
        None, max_length=MAX_URL, description="http(s) link to a JPEG or PNG; needs `voice_name`."
    )
    consent_video_url: str | None = Field(None, max_length=MAX_URL, description="http(s) link to a consent clip.")
    voice_name: str | None = Field(None, max_length=64, description="A stock voice (GET /v2/voices), e.g. `anna`.")
    auto_fix_training_image: bool | None = None
    callback_url: str | None = Field(None, max_length=MAX_URL, description="Receives the training outcome.")
    model_name: Literal["phoenix-4", "phoenix-3"] | None = Field(None, description="Default `phoenix-4`.")
    properties: TrainingProperties | None = None


class ReplicaTrainingBody(_TrainingBody):
    replica_name: str | None = Field(None, max_length=MAX_NAME)


class FaceTrainingBody(_TrainingBody):
    face_name: str | None = Field(None, max_length=MAX_NAME)


class ReplicaStarted(BaseModel):
    replica_id: str
    status: Literal["started"]


class FaceStarted(BaseModel):
    face_id: str
    status: Literal["started"]


def training(request: Request) -> ReplicaTraining:
    return request.app.state.training


def training_router(vocabulary: Vocabulary, prefix: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    noun = vocabulary.noun.capitalize()
    is_replica = vocabulary is REPLICA

    async def create(request: Request) -> JSONResponse:
        body = await parse_object(request)
        return JSONResponse(await training(request).create(deps.account_id(request), body, vocabulary))

    route(
        router,
        "",
        create,
        methods=["POST"],
        summary=f"Create {noun} (train from a video or an image)",
        openapi_extra=request_body_schema(ReplicaTrainingBody if is_replica else FaceTrainingBody),
        responses={
            200: {"model": ReplicaStarted if is_replica else FaceStarted, "description": "Training started"},
            400: {"model": ErrorBody, "description": "The request breaks the contract"},
            **UNAUTHORIZED,
        },
    )
    return router


media_router = APIRouter(tags=["Media"])


@media_router.get(
    "/media/{key}",
    summary="A trained replica's thumbnail (no API key: the URL is the access)",
    response_class=Response,
    responses={
        200: {"description": "The file", "content": {"video/mp4": {}, "image/jpeg": {}}},
        206: {"description": "Part of the file (Range)", "content": {"video/mp4": {}, "image/jpeg": {}}},
        404: {"model": ErrorBody, "description": "No such file (or purged by a hard delete)"},
    },
)
async def media_file(request: Request, key: str) -> Response:
    record = await training(request).media_file(key) if MEDIA_KEY.fullmatch(key) else None
    if record is None:
        return JSONResponse({"error": "Media not found"}, status_code=404)
    headers = {"cache-control": CACHE, "accept-ranges": "bytes"}
    part = _byte_range(request.headers.get("range"), len(record.data))
    if part is None:
        return Response(record.data, media_type=record.content_type, headers=headers)
    start, end = part
    headers["content-range"] = f"bytes {start}-{end}/{len(record.data)}"
    return Response(record.data[start : end + 1], status_code=206, media_type=record.content_type, headers=headers)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range within the file (what video players send), else None: the whole file."""
    match = RANGE.fullmatch((header or "").strip())
    if match is None or size == 0 or not (match[1] or match[2]):
        return None
    if match[1]:
        start, end = int(match[1]), int(match[2]) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1  # the last N bytes
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def routers() -> list[APIRouter]:
    return [
        training_router(REPLICA, "/v2/replicas", "Replicas"),
        training_router(FACE, "/v2/faces", "Faces"),
        media_router,
    ]
