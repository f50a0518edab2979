"""`GET /rooms/{conversation_id}`: the page a `conversation_url` opens, and `/static`: what it loads.

No API key: like a Daily room link, the URL itself is what a participant has.
The page is an HTML shell rendered here with what the record says (the
conversation's name and state, the replica's name and face); `/static/room.js`
joins the room's WebSocket (api/room_socket.py) and does everything live. A
conversation that can no longer be joined is rendered as such, so a late
visitor sees it without a socket ever opening.

`/static` also serves the JavaScript drop-in for web apps
(`palaver-call.js`, docs/rooms-javascript.md) and its example page.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from importlib import resources
from string import Template
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from palaver import __version__
from palaver.domain.conversation import ShutdownReason
from palaver.domain.errors import InvalidId
from palaver.domain.ids import is_conversation_id
from palaver.domain.personas import PERSONA
from palaver.domain.replicas import REPLICA

router = APIRouter(tags=["Rooms"])

_FILES = resources.files("palaver.rooms")
_PAGE = Template(_FILES.joinpath("page.html").read_text(encoding="utf-8"))
_NOT_FOUND = Template(_FILES.joinpath("not_found.html").read_text(encoding="utf-8"))

ENDED = "This conversation has ended."
# Why it ended, in words (the same phrases as room.js shows when it ends live).
_REASONS = {
    ShutdownReason.END_ENDPOINT: "It was ended through the API.",
    ShutdownReason.ROOM_DELETED: "It was deleted.",
    ShutdownReason.MAX_CALL_DURATION: "It reached its maximum duration.",
    ShutdownReason.PARTICIPANT_LEFT_TIMEOUT: "Everyone had left.",
    ShutdownReason.PARTICIPANT_ABSENT_TIMEOUT: "Nobody joined in time.",
}
AVATAR_COLOURS = 8  # room.css has .avatar.c0 … .c7: the page has no inline styles (its CSP forbids them)

# The page runs only Palaver's own script (no inline script, no other origin), so
# an escaping mistake cannot become script. Thumbnails may live elsewhere, and the
# socket is same-origin (ws: and wss: are listed because not every browser lets
# 'self' cover them). No frame-ancestors: conversation_url is meant to be embedded.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "media-src 'self' https: http:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


def static_files() -> StaticFiles:
    """The app mounted at `/static` (app.py): the files of src/palaver/rooms/static."""
    mimetypes.add_type("text/javascript", ".mjs")  # module scripts need a JavaScript type; not every system maps it
    return StaticFiles(directory=str(_FILES.joinpath("static")))


@router.get(
    "/rooms/{conversation_id}",
    response_class=HTMLResponse,
    summary="Conversation room page",
    responses={404: {"description": "No such room", "content": {"text/html": {}}}},
)
async def room_page(request: Request, conversation_id: str) -> HTMLResponse:
    record = None
    if is_conversation_id(conversation_id):
        record = await request.app.state.storage.find_conversation(conversation_id)
    headers = {"content-security-policy": CSP, "cache-control": "no-store"}
    if record is None:
        return HTMLResponse(_NOT_FOUND.substitute(version=__version__), status_code=404, headers=headers)
    replica = await _document(request.app.state.replicas, record.account_id, record.replica_id, REPLICA)
    persona = await _document(request.app.state.personas, record.account_id, record.persona_id, PERSONA)
    replica_name = str(replica.get("replica_name") or record.replica_id)
    live = record.status == "active"
    if live:
        label, detail = "Not joined", ""
    elif record.status == "ended":
        label, detail = "Ended", " ".join(filter(None, [ENDED, _REASONS.get(record.shutdown_reason or "", "")]))
    else:
        label, detail = record.status.capitalize(), f"This conversation cannot be joined (status: {record.status})."
    e = html.escape
    page = _PAGE.substitute(
        version=e(__version__),
        name=e(record.conversation_name),
        status=e(record.status),
        status_label=e(label),
        status_detail=e(detail),
        conversation_id=e(record.conversation_id),
        replica_id=e(record.replica_id),
        replica_name=e(replica_name),
        persona_name=e(str(persona.get("persona_name") or "")),
        avatar=_avatar(replica_name, record.replica_id, replica.get("thumbnail_video_url")),
        call_hidden="" if live else " hidden",
    )
    return HTMLResponse(page, headers=headers)


@router.get(
    "/rooms/{conversation_id}/state",
    summary="Whether the room can still be joined (what the room page checks while it has no socket)",
    responses={404: {"description": "No such room"}},
)
async def room_state(request: Request, conversation_id: str) -> JSONResponse:
    """`{"status", "shutdown_reason"}`: a page waiting at its name prompt learns the end without a socket."""
    record = None
    if is_conversation_id(conversation_id):
        record = await request.app.state.storage.find_conversation(conversation_id)
    if record is None:
        return JSONResponse({"error": "No such room"}, status_code=404, headers={"cache-control": "no-store"})
    body = {"status": record.status, "shutdown_reason": record.shutdown_reason}
    return JSONResponse(body, headers={"cache-control": "no-store"})


async def _document(service: Any, account_id: str, resource_id: str, vocabulary: Any) -> dict[str, Any]:
    """The replica's or persona's document; {} if it was deleted since (the conversation outlives it)."""
    try:
        return await service.document(account_id, resource_id, vocabulary)
    except InvalidId:
        return {}


def initials(name: str) -> str:
    """`Anna` -> `A`, `Lucas - Studio` -> `LS`: the first letters of the first two words."""
    words = [w for w in name.split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def _avatar(name: str, replica_id: str, thumbnail: Any) -> str:
    """The replica's face: its trained thumbnail (a short clip or a picture), else its initials in a circle."""
    label = html.escape(f"{name} (replica)")
    if isinstance(thumbnail, str) and thumbnail.startswith(("https://", "http://")):
        src = html.escape(thumbnail)
        if thumbnail.lower().split("?", 1)[0].endswith((".jpg", ".jpeg", ".png", ".webp")):
            return f'<img class="avatar" id="avatar" src="{src}" alt="{label}">'
        clip = "autoplay muted loop playsinline"  # a silent few seconds of the training footage, looping
        return f'<video class="avatar" id="avatar" src="{src}" aria-label="{label}" {clip}></video>'
    colour = int(hashlib.sha256(replica_id.encode()).hexdigest(), 16) % AVATAR_COLOURS
    letters = html.escape(initials(name))
    return f'<div class="avatar initials c{colour}" id="avatar" role="img" aria-label="{label}">{letters}</div>'
