"""Guardrails (sets and single ones): create, read, list, tags, JSON Patch, delete with PAL detach."""

from __future__ import annotations

from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidBody, InvalidPatch, NotModified, ResourceNotFound
from palaver.domain.guardrails import READ_ONLY, check_set, check_single, is_set, new_guardrail_id
from palaver.domain.patches import apply_patch
from palaver.service.personas import PersonaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "guardrail"
PATCH_REFUSED = "Invalid patch operation"


def not_found() -> ResourceNotFound:
    return ResourceNotFound("Guardrails not found")


def _checked(document_is_set: bool, fields: dict[str, Any]) -> dict[str, Any] | str:
    return check_set(fields) if document_is_set else check_single(fields)


class GuardrailService:
    def __init__(self, store: ResourceStore, clock: Clock, personas: PersonaService) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, not_found))
        self.personas = personas

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A legacy set when the body has a `data` list, else a single guardrail."""
        server_owned = sorted(READ_ONLY & body.keys())
        if server_owned:
            raise InvalidBody(f"{server_owned[0]} is set by the server")
        legacy = "data" in body
        fields = _checked(legacy, body)
        if isinstance(fields, str):
            raise InvalidBody(fields)
        guardrail_id = new_guardrail_id()
        ids = {"guardrails_id": guardrail_id} if legacy else {"guardrail_id": guardrail_id}
        document = {**ids, "uuid": guardrail_id, **fields, "status": "active"}
        return (await self.resources.add(account_id, guardrail_id, document)).body

    async def get(self, account_id: str, guardrail_id: str) -> dict[str, Any]:
        return (await self.resources.get(account_id, guardrail_id)).body

    async def list(
        self,
        account_id: str,
        *,
        legacy: bool | None = None,
        name_or_uuid: str | None = None,
        tags: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first. `legacy`: True for sets only, False for single guardrails only, None for both.

        `name_or_uuid` matches an id exactly or a name in part (a set's `name`, a guardrail's
        `guardrail_name`); `tags` keeps single guardrails carrying any of them.
        """
        documents = [r.body for r in await self.resources.list(account_id)]
        if legacy is not None:
            documents = [d for d in documents if is_set(d) == legacy]
        if name_or_uuid:
            needle = name_or_uuid.lower()
            documents = [
                d
                for d in documents
                if d["uuid"] == name_or_uuid or needle in (d.get("name") or d.get("guardrail_name") or "").lower()
            ]
        if tags:
            wanted = {t.lower() for t in tags}
            documents = [d for d in documents if wanted & {t.lower() for t in d.get("tags") or ()}]
        return documents

    async def tags(self, account_id: str, *, search: str | None = None) -> list[str]:
        """The distinct tags of the account's guardrails, sorted; `search` matches in part, any case."""
        found: dict[str, str] = {}
        for record in await self.resources.list(account_id):
            for tag in record.body.get("tags") or ():
                found.setdefault(tag.lower(), tag)
        names = sorted(found.values(), key=str.lower)
        if search:
            names = [t for t in names if search.lower() in t.lower()]
        return names

    async def patch(self, account_id: str, guardrail_id: str, operations: Any) -> dict[str, Any]:
        """RFC 6902 on the stored document (a set or a single guardrail), all or nothing."""
        refused = InvalidPatch(PATCH_REFUSED, status=400, key="error")

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(body, operations, read_only=READ_ONLY, malformed=refused, failed=refused)
            fields = _checked(is_set(body), {k: v for k, v in patched.items() if k not in READ_ONLY})
            if isinstance(fields, str):
                raise InvalidPatch(f"{PATCH_REFUSED}: {fields}", status=400, key="error")
            head = {k: body[k] for k in ("guardrails_id", "guardrail_id", "uuid") if k in body}
            tail = {k: body[k] for k in ("status", "created_at", "updated_at")}
            return {**head, **fields, **tail}

        await self.resources.get(account_id, guardrail_id)  # an unknown id before the patch's own errors
        record = await self.resources.change(
            account_id, guardrail_id, change, not_modified=NotModified("No changes were made to the guardrails")
        )
        return record.body

    async def delete(self, account_id: str, guardrail_id: str) -> None:
        """Delete it and take it off every PAL of the account (by id in a list or as the set)."""
        await self.resources.remove(account_id, guardrail_id)
        await self.personas.detach(account_id, "guardrail_ids", guardrail_id)
        await self.personas.detach(account_id, "guardrails_id", guardrail_id)
