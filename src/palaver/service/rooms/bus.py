"""The room bus: how every process serving a room hears what happens in it.

Each process keeps its own participants' sockets. Everything said in a room
(a participant's message, the replica's answer, a join or a leave) is
published on the bus and handed to every subscriber of that room in every
process, this one included, in one order for all of them. On SQLite one
process serves rooms and the bus is a dictionary of handlers; on PostgreSQL it
is LISTEN/NOTIFY on the database already there (no extra broker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Handler = Callable[[dict[str, Any]], None]


class RoomBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, conversation_id: str, message: dict[str, Any]) -> None:
        """Hand `message` (a JSON object) to every handler of the room in every process."""
        ...

    def subscribe(self, conversation_id: str, handler: Handler) -> None: ...

    def unsubscribe(self, conversation_id: str, handler: Handler) -> None: ...


class Subscriptions:
    """The handlers of this process, per room: what every bus keeps the same way."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, conversation_id: str, handler: Handler) -> None:
        self._handlers.setdefault(conversation_id, []).append(handler)

    def unsubscribe(self, conversation_id: str, handler: Handler) -> None:
        handlers = self._handlers.get(conversation_id)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[conversation_id]

    def subscribed(self, conversation_id: str) -> bool:
        return conversation_id in self._handlers

    def handlers_of(self, conversation_id: str) -> list[Handler]:
        """A copy: a handler may unsubscribe while the others are called."""
        return list(self._handlers.get(conversation_id, ()))


class LocalBus(Subscriptions):
    """One process: handlers are called in publish order, synchronously."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

    async def publish(self, conversation_id: str, message: dict[str, Any]) -> None:
        for handler in self.handlers_of(conversation_id):
            handler(message)


def open_room_bus(database_url: str) -> RoomBus:
    """The bus for a database: LocalBus for SQLite (one process serves rooms), LISTEN/NOTIFY for PostgreSQL."""
    from palaver.storage.base import backend_of

    if backend_of(database_url) == "sqlite":
        return LocalBus()
    from palaver.storage.postgres_bus import PostgresRoomBus

    return PostgresRoomBus(database_url)
