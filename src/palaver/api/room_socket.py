"""`<conversation_url>/ws`: a participant's WebSocket into a room.

Opening the socket is joining, closing it is leaving. Frames carry the
Interactions Protocol JSON (domain/interactions.py); this handler only moves
them between the socket and the process's RoomHub. A refused join is accepted
just long enough to say why (`room.error`) and closed with a 44xx code, so a
browser sees the reason, not a bare failed handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from palaver.domain import interactions as ip
from palaver.service.rooms.hub import Refused, RoomHub
from palaver.service.rooms.room import CLOSE, Participant

router = APIRouter()

TOO_BIG = 1009  # WebSocket close code: message too big


@router.websocket("/rooms/{conversation_id}/ws")
async def room_socket(websocket: WebSocket, conversation_id: str) -> None:
    hub: RoomHub = websocket.app.state.rooms
    params = websocket.query_params
    token = params.get("token") or params.get("t")
    await websocket.accept()
    try:
        room, participant = await hub.admit(conversation_id, token, params.get("name") or "Guest")
    except Refused as refused:
        error = ip.room_message(conversation_id, ip.ROOM_ERROR, {"message": refused.message, "code": refused.code})
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(error))
            await websocket.close(refused.code, refused.message)
        return
    writer = asyncio.create_task(_write(websocket, participant), name="palaver-room-writer")
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            data = frame.get("text")
            if data is None:
                data = frame.get("bytes") or b""
            if ip.oversized(data):
                too_large = f"message too large: at most {ip.MAX_MESSAGE_BYTES} bytes"
                participant.deliver(ip.room_message(conversation_id, ip.ROOM_ERROR, {"message": too_large}))
                participant.close(TOO_BIG, "message too large")
                break
            await hub.receive(room, participant, data)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await hub.leave(room, participant)
        participant.close(participant.close_code, participant.close_reason)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(writer, timeout=5)


async def _write(websocket: WebSocket, participant: Participant) -> None:
    """Send the participant's queued messages in order; the CLOSE sentinel closes the socket."""
    try:
        while True:
            message = await participant.outbox.get()
            if message is CLOSE:
                break
            await websocket.send_text(json.dumps(message, ensure_ascii=False, separators=(",", ":")))
    except Exception:  # the peer went away: the reader notices and leaves
        return
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(participant.close_code, participant.close_reason[:120])
