"""`GET /rooms/{conversation_id}`: the page a `conversation_url` opens.

No API key: like a Daily room link, the URL itself is what a participant has.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from palaver.domain.ids import is_conversation_id

router = APIRouter(tags=["Rooms"])

_PAGE = Template(resources.files("palaver.rooms").joinpath("page.html").read_text(encoding="utf-8"))
_NOTES = {
    "active": "The room is open. Live audio and video arrive in a later Palaver release.",
    "ended": "This conversation has ended; the room is closed.",
}


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
    if record is None:
        return HTMLResponse("<!doctype html><title>Not found</title><h1>No such room</h1>", status_code=404)
    page = _PAGE.substitute(
        name=html.escape(record.conversation_name),
        status=html.escape(record.status),
        conversation_id=html.escape(record.conversation_id),
        replica_id=html.escape(record.replica_id),
        note=html.escape(_NOTES.get(record.status, "")),
    )
    return HTMLResponse(page)
