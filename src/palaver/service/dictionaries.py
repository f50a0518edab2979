"""Pronunciation dictionaries: create, read, list, JSON Patch, delete (and clear it from PALs).

A PATCH is RFC 6902 on the dictionary as GET shows it. Only `name` and `rules`
are taken from the result: what a patch does to the server's fields
(`pronunciation_dictionary_id`, `rules_count`, the timestamps) is ignored, as
the reference says, and a patch that leaves both as they were answers 304.
A patched `rules` list replaces the old one whole.
"""

from __future__ import annotations

from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.dictionaries import check_dictionary, new_dictionary_id
from palaver.domain.errors import InvalidId, InvalidPatch, NotModified, ResourceNotFound, ValidationFailed
from palaver.domain.patches import apply_patch
from palaver.service.personas import PersonaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "dictionary"
BAD_PATCH = InvalidPatch("Invalid JSON patch format")  # 422 {"message": ...} (reference 1.2)


def not_found() -> ResourceNotFound:
    return ResourceNotFound("Pronunciation dictionary not found", key="message")


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    checked = check_dictionary(fields)
    if isinstance(checked, str):
        raise ValidationFailed(checked)
    return {**checked, "rules_count": len(checked["rules"])}


class DictionaryService:
    def __init__(self, store: ResourceStore, clock: Clock, personas: PersonaService) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, not_found))
        self.personas = personas

    async def create(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - {"name", "rules"})
        if unknown:
            raise ValidationFailed(f"Invalid request: unknown field {unknown[0]}")
        fields = _checked({"name": body.get("name"), "rules": body.get("rules", [])})
        dictionary_id = new_dictionary_id()
        record = await self.resources.add(account_id, dictionary_id, {"pronunciation_dictionary_id": dictionary_id,
                                                                      **fields})  # fmt: skip
        return record.body

    async def get(self, account_id: str, dictionary_id: str) -> dict[str, Any]:
        return (await self.resources.get(account_id, dictionary_id)).body

    async def list(self, account_id: str) -> list[dict[str, Any]]:
        """Newest first; a list item leaves out `rules` (its `rules_count` says how many)."""
        return [{k: v for k, v in r.body.items() if k != "rules"} for r in await self.resources.list(account_id)]

    async def patch(self, account_id: str, dictionary_id: str, operations: Any) -> dict[str, Any]:
        async def change(body: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(body, operations, malformed=BAD_PATCH, failed=BAD_PATCH)
            fields = _checked({"name": patched.get("name"), "rules": patched.get("rules")})
            return {**body, **fields}

        await self.resources.get(account_id, dictionary_id)  # an unknown id before the patch's own errors
        record = await self.resources.change(
            account_id, dictionary_id, change, not_modified=NotModified("No changes were made to the dictionary")
        )
        return record.body

    async def delete(self, account_id: str, dictionary_id: str) -> None:
        """Delete it and clear `layers.tts.pronunciation_dictionary_id` on every PAL of the account naming it."""
        await self.resources.remove(account_id, dictionary_id)
        for record in await self.personas.resources.list(account_id):
            if _tts(record.body).get("pronunciation_dictionary_id") != dictionary_id:
                continue

            async def clear(body: dict[str, Any]) -> dict[str, Any]:
                tts = _tts(body)
                if tts.get("pronunciation_dictionary_id") == dictionary_id:
                    del tts["pronunciation_dictionary_id"]
                return body

            try:
                await self.personas.resources.change(account_id, record.resource_id, clear)
            except InvalidId:
                pass  # the PAL was deleted meanwhile


def _tts(document: dict[str, Any]) -> dict[str, Any]:
    layers = document.get("layers")
    tts = layers.get("tts") if isinstance(layers, dict) else None
    return tts if isinstance(tts, dict) else {}
