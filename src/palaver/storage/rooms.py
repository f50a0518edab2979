"""The storage interface of live rooms: transcripts, the room's host, and the server's shared secrets.

A room's messages travel through the process (and, on PostgreSQL, through
LISTEN/NOTIFY); what must outlive a process lives here:

- the transcript, one JSON entry per turn, appended only while the conversation is
  active, so the transcript the end delivers is final (an append that loses the
  race with the end is refused, never half-kept);
- which process hosts the room's replica (a lease: the host renews it while it
  serves the room; when the host dies, another process with participants in the
  room takes over once it lapses);
- secrets every process must share to check what another process signed (the
  meeting tokens of `require_auth` rooms), created once by whichever process
  asks first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from palaver.storage.resources import dump


def json_text(value: dict[str, Any]) -> str:
    """A transcript entry's stored text (and a bus message's): `dump` (compact, key order kept), or, if it
    holds a lone surrogate (JSON may carry `\\ud800`; UTF-8 cannot), the same with `\\u` escapes, so that a
    participant's odd text is kept as sent instead of failing the write."""
    text = dump(value)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


class RoomStore(Protocol):
    async def append_turn(self, conversation_id: str, entry: dict[str, Any]) -> bool:
        """Store one transcript entry after the others; False (nothing stored) unless the conversation
        is active. On PostgreSQL the conversation's row is locked for it (storage/postgres_rooms.py), so an
        end that commits after this append sees it, and an append after the end is refused."""
        ...

    async def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's transcript entries in the order they were appended."""
        ...

    async def closed_among(self, conversation_ids: Sequence[str]) -> set[str]:
        """Which of these conversations can no longer be joined: ended, deleted or unknown."""
        ...

    async def claim_host(self, conversation_id: str, host: str, now: float, lease: float) -> bool:
        """Become (or stay) the room's host until `now + lease`: True if `host` holds it now, that is
        if nobody did, it was already `host`, or the holder's lease had lapsed."""
        ...

    async def claim_hosts(self, conversation_ids: Sequence[str], host: str, now: float, lease: float) -> set[str]:
        """`claim_host` for many rooms in one write (a process renews all its rooms at once); the
        rooms `host` holds now."""
        ...

    async def release_host(self, conversation_id: str, host: str) -> None:
        """Give the room up (only if `host` holds it), so another process can take it at once."""
        ...

    async def shared_secret(self, name: str) -> bytes:
        """A random 32-byte secret under `name`, the same for every process: created on first use."""
        ...
