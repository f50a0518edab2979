"""The tools registry: create, read, list, partial update, delete (which detaches from every PAL).

Tools are one of the newer resources, so an unknown, malformed or foreign id is
a 404 `{"error": "Tool not found"}` (as objectives and guardrails answer),
never a sign that the id exists in another account.
"""

from __future__ import annotations

from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.errors import ResourceNotFound
from palaver.domain.tools import check_tool, merge_update, new_tool_id
from palaver.service.personas import PersonaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "tool"


def tool_not_found() -> ResourceNotFound:
    return ResourceNotFound("Tool not found")


class ToolService:
    def __init__(self, store: ResourceStore, clock: Clock, personas: PersonaService) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, tool_not_found))
        self.personas = personas

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = check_tool(body)
        tool_id = new_tool_id()
        record = await self.resources.add(account_id, tool_id, {"tool_id": tool_id, **fields})
        return record.body

    async def get(self, account_id: str, tool_id: str) -> dict[str, Any]:
        return (await self.resources.get(account_id, tool_id)).body

    async def find(self, account_id: str, tool_id: str) -> dict[str, Any] | None:
        record = await self.resources.find(account_id, tool_id)
        return None if record is None else record.body

    async def list(self, account_id: str, *, tool_type: str, name_or_uuid: str | None) -> list[dict[str, Any]]:
        """The account's tools, newest first; Palaver ships no system tools, so `system` is empty."""
        if tool_type == "system":
            return []
        documents = [record.body for record in await self.resources.list(account_id)]
        if name_or_uuid:
            needle = name_or_uuid.lower()
            documents = [d for d in documents if d["tool_id"] == name_or_uuid or needle in d["name"].lower()]
        return documents

    async def update(self, account_id: str, tool_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A plain partial object: the given fields replace the stored ones; the result must be a valid tool."""

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            fields = check_tool(merge_update(body, changes))
            return {"tool_id": body["tool_id"], **fields, "created_at": body["created_at"],
                    "updated_at": body["updated_at"]}  # fmt: skip

        return (await self.resources.change(account_id, tool_id, change)).body

    async def delete(self, account_id: str, tool_id: str) -> None:
        """Delete the tool, then take it out of every PAL of the account that has it attached.

        A PAL read between the two steps may still name the deleted id; PAL tool
        listings skip ids whose tool is gone.
        """
        await self.resources.remove(account_id, tool_id)
        await self.personas.detach(account_id, "tool_ids", tool_id)
