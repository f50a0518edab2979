"""Objectives sets: create, validate, read, list, JSON Patch, delete.

The stored document is the set as GET shows it under `data`
(`{objectives_id, uuid, name, data: [...], allow_loops, status, created_at,
updated_at}`), and a JSON Patch is written against that same document, so
`/data/0/objective_prompt` names the first objective's prompt and `/data`
the whole list (a client that keeps its objectives in code replaces `/data`).
"""

from __future__ import annotations

from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidBody, InvalidPatch, NotModified, ResourceNotFound
from palaver.domain.objectives import READ_ONLY, check_set, new_objectives_id
from palaver.domain.patches import apply_patch
from palaver.service.personas import PersonaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "objectives"
PATCH_REFUSED = "Invalid patch operation"


def not_found() -> ResourceNotFound:
    return ResourceNotFound("Objective not found")


class ObjectivesService:
    def __init__(self, store: ResourceStore, clock: Clock, personas: PersonaService) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, not_found))
        self.personas = personas

    @staticmethod
    def validate(body: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        """The set's fields and every reason this create body would be refused (none: it would be accepted)."""
        server_owned = sorted(READ_ONLY & body.keys())
        if server_owned:
            return None, [f"{server_owned[0]} is set by the server"]
        return check_set(body)

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        fields, problems = self.validate(body)
        if problems or fields is None:
            raise InvalidBody(problems[0] if problems else "Invalid objectives")
        objectives_id = new_objectives_id()
        document = {"objectives_id": objectives_id, "uuid": objectives_id, **fields, "status": "active"}
        return (await self.resources.add(account_id, objectives_id, document)).body

    async def get(self, account_id: str, objectives_id: str) -> dict[str, Any]:
        return (await self.resources.get(account_id, objectives_id)).body

    async def list(self, account_id: str, *, name_or_uuid: str | None = None) -> list[dict[str, Any]]:
        """The account's sets, newest first; `name_or_uuid` matches an id exactly or a name in part."""
        documents = [r.body for r in await self.resources.list(account_id)]
        if name_or_uuid:
            needle = name_or_uuid.lower()
            documents = [d for d in documents if d["objectives_id"] == name_or_uuid or needle in d["name"].lower()]
        return documents

    async def patch(self, account_id: str, objectives_id: str, operations: Any) -> dict[str, Any]:
        """RFC 6902 on the stored set, all or nothing; a result that breaks the set's rules is refused."""
        refused = InvalidPatch(PATCH_REFUSED, status=400, key="error")

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(body, operations, read_only=READ_ONLY, malformed=refused, failed=refused)
            own = {k: v for k, v in patched.items() if k not in READ_ONLY}
            fields, problems = check_set(own)
            if problems or fields is None:
                reason = problems[0] if problems else "invalid"
                raise InvalidPatch(f"{PATCH_REFUSED}: {reason}", status=400, key="error")
            own_ids = {k: body[k] for k in ("objectives_id", "uuid")}
            return {**own_ids, **fields, **{k: body[k] for k in ("status", "created_at", "updated_at")}}

        await self.resources.get(account_id, objectives_id)  # an unknown id before the patch's own errors
        record = await self.resources.change(
            account_id, objectives_id, change, not_modified=NotModified("No changes were made to the objective")
        )
        return record.body

    async def delete(self, account_id: str, objectives_id: str) -> None:
        """Delete the set and clear it from every PAL of the account that used it."""
        await self.resources.remove(account_id, objectives_id)
        await self.personas.detach(account_id, "objectives_id", objectives_id)
