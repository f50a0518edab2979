"""Memory stores and their memories: written when a conversation names a store, read, listed, deleted.

Stored as kind "memory", one object per (account, store):
`{memory_store_id, memory_store, memories: [{memory_id, content, source,
persona_id, conversation_id, created_at}], created_at, updated_at}`, where
`memory_store_id` and `memory_store` are both the caller's key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.errors import ResourceNotFound
from palaver.domain.memories import MAX_MEMORIES, is_memory_id, is_store_name, new_memory_id, storage_key
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "memory"


def store_not_found() -> ResourceNotFound:
    return ResourceNotFound("Memory store not found", key="message")


def memory_not_found() -> ResourceNotFound:
    return ResourceNotFound("Memory not found", key="message")


def summary(body: dict[str, Any]) -> dict[str, Any]:
    """A store as lists show it: its count instead of its memories."""
    return {
        "memory_store_id": body["memory_store_id"],
        "memory_store": body["memory_store"],
        "memories_count": len(body["memories"]),
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }


class MemoryService:
    def __init__(self, store: ResourceStore, clock: Clock) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, store_not_found))

    async def remember(
        self,
        account_id: str,
        stores: Iterable[str],
        lines: Iterable[str],
        *,
        persona_id: str | None = None,
        conversation_id: str | None = None,
    ) -> list[str]:
        """Write `lines` (a PAL's seed memories) into each named store, creating it if needed; a line
        this PAL already wrote to a store is not written again. Names Palaver cannot address in a URL
        are skipped. Returns the names of the stores written (created or not)."""
        lines = [line for line in dict.fromkeys(lines) if isinstance(line, str) and line.strip()]
        written = []
        for name in dict.fromkeys(stores):
            if not isinstance(name, str) or not is_store_name(name):
                continue
            await self._write(account_id, name, lines, persona_id, conversation_id)
            written.append(name)
        return written

    async def _write(
        self, account_id: str, name: str, lines: list[str], persona_id: str | None, conversation_id: str | None
    ) -> None:
        key = storage_key(account_id, name)

        async def append(body: dict[str, Any]) -> dict[str, Any]:
            have = {(m.get("persona_id"), m["content"]) for m in body["memories"]}
            stamp = self.resources.stamp()
            for line in lines:
                if (persona_id, line) not in have:
                    body["memories"].append({"memory_id": new_memory_id(), "content": line, "source": "pal_seed",
                                             "persona_id": persona_id, "conversation_id": conversation_id,
                                             "created_at": stamp})  # fmt: skip
            body["memories"] = body["memories"][-MAX_MEMORIES:]
            return body

        if await self.resources.find(account_id, key) is None:
            fresh = await append({"memory_store_id": name, "memory_store": name, "memories": []})
            try:
                await self.resources.add(account_id, key, fresh)
                return
            except Exception:
                if await self.resources.find(account_id, key) is None:
                    raise  # not a concurrent create of the same store: a real failure
        await self.resources.change(account_id, key, append)

    async def list(self, account_id: str) -> list[dict[str, Any]]:
        return [summary(r.body) for r in await self.resources.list(account_id)]

    async def get(self, account_id: str, name: str) -> dict[str, Any]:
        if not is_store_name(name):
            raise store_not_found()
        return (await self.resources.get(account_id, storage_key(account_id, name))).body

    async def delete_store(self, account_id: str, name: str) -> None:
        if not is_store_name(name):
            raise store_not_found()
        await self.resources.remove(account_id, storage_key(account_id, name))

    async def delete_memory(self, account_id: str, name: str, memory_id: str) -> None:
        """Delete one memory of a store; an unknown memory (or store) is 404."""
        if not is_store_name(name) or not is_memory_id(memory_id):
            raise memory_not_found()
        key = storage_key(account_id, name)
        if await self.resources.find(account_id, key) is None:
            raise memory_not_found()

        async def drop(body: dict[str, Any]) -> dict[str, Any]:
            kept = [m for m in body["memories"] if m["memory_id"] != memory_id]
            if len(kept) == len(body["memories"]):
                raise memory_not_found()
            body["memories"] = kept
            return body

        try:
            await self.resources.change(account_id, key, drop)
        except ResourceNotFound:
            raise memory_not_found() from None
