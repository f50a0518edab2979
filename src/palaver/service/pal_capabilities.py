"""What a PAL can do beyond talking: its attached tools and its skills.

Both live in the PAL's own document (`tool_ids`, `skills`), so `GET /v2/pals/{id}`
shows every change made here, and every write goes through the persona
service's compare-and-swap change with the document's own checks. Stock PALs
are shared by every account and read-only: their (empty) tools and skills can
be read, never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palaver.domain.errors import InvalidId, ResourceNotFound, ValidationFailed
from palaver.domain.personas import MAX_LIST, check_document
from palaver.domain.skills import check_config, entry, merge_config, skill
from palaver.domain.vocabulary import Vocabulary
from palaver.service.personas import STOCK_DOCUMENTS, PersonaService
from palaver.service.tools import ToolService
from palaver.storage.resources import ResourceStore


class PalCapabilities:
    def __init__(self, personas: PersonaService, tools: ToolService, store: ResourceStore) -> None:
        self.personas = personas
        self.tools = tools
        self._store = store

    # tools --------------------------------------------------------------------------------------

    async def tools_of(self, account_id: str, pal_id: str, vocabulary: Vocabulary) -> list[dict[str, Any]]:
        """The attached tools in the order they were attached (an id whose tool is gone is skipped)."""
        document = await self.personas.document(account_id, pal_id, vocabulary)
        return await self._tool_documents(account_id, document.get("tool_ids") or [])

    async def attach_tools(
        self, account_id: str, pal_id: str, tool_ids: list[str], vocabulary: Vocabulary
    ) -> list[dict[str, Any]]:
        """Attach tools of the account (already attached ones are left as they are); the PAL's tools after."""
        await self._writable(account_id, pal_id, vocabulary)
        wanted = list(dict.fromkeys(tool_ids))
        for tool_id in wanted:
            if await self.tools.find(account_id, tool_id) is None:
                raise ValidationFailed(f"Invalid tool_ids: {tool_id}")

        def attach(current: list[str]) -> list[str]:
            result = current + [tool_id for tool_id in wanted if tool_id not in current]
            if len(result) > MAX_LIST:
                raise ValidationFailed(f"A {vocabulary.noun} can have at most {MAX_LIST} tools ({len(result)} asked)")
            return result

        document = await self.personas.update_list(account_id, pal_id, "tool_ids", attach, vocabulary)
        return await self._tool_documents(account_id, document["tool_ids"])

    async def detach_tool(self, account_id: str, pal_id: str, tool_id: str, vocabulary: Vocabulary) -> None:
        await self._writable(account_id, pal_id, vocabulary)

        def detach(current: list[str]) -> list[str]:
            if tool_id not in current:
                raise ResourceNotFound(f"Tool not attached to this {vocabulary.noun}")
            return [item for item in current if item != tool_id]

        await self.personas.update_list(account_id, pal_id, "tool_ids", detach, vocabulary)

    async def _tool_documents(self, account_id: str, tool_ids: list[str]) -> list[dict[str, Any]]:
        found = [await self.tools.find(account_id, tool_id) for tool_id in tool_ids]
        return [document for document in found if document is not None]

    # skills -------------------------------------------------------------------------------------

    async def skills_of(self, account_id: str, pal_id: str, vocabulary: Vocabulary) -> dict[str, Any]:
        document = await self.personas.document(account_id, pal_id, vocabulary)
        return dict(document.get("skills") or {})

    async def skill_of(self, account_id: str, pal_id: str, skill_id: str, vocabulary: Vocabulary) -> dict[str, Any]:
        skills = await self.skills_of(account_id, pal_id, vocabulary)
        skill(skill_id)
        if skill_id not in skills:
            raise self._not_attached(vocabulary)
        return skills[skill_id]

    async def put_skill(
        self, account_id: str, pal_id: str, skill_id: str, config: Any, vocabulary: Vocabulary
    ) -> dict[str, Any]:
        """Attach the skill, or replace its whole config."""
        await self._writable(account_id, pal_id, vocabulary)
        new = {"config": check_config(skill_id, config)}

        def put(skills: dict[str, Any]) -> dict[str, Any]:
            return {**skills, skill_id: new}

        return (await self._change_skills(account_id, pal_id, put, vocabulary))[skill_id]

    async def patch_skill(
        self, account_id: str, pal_id: str, skill_id: str, changes: Any, vocabulary: Vocabulary
    ) -> dict[str, Any]:
        """Merge a partial config into an attached skill's config."""
        await self._writable(account_id, pal_id, vocabulary)
        skill(skill_id)
        if not isinstance(changes, dict):
            raise ValidationFailed("config must be a JSON object")

        def patch(skills: dict[str, Any]) -> dict[str, Any]:
            if skill_id not in skills:
                raise self._not_attached(vocabulary)
            merged = merge_config(skills[skill_id].get("config") or {}, changes)
            return {**skills, skill_id: {"config": check_config(skill_id, merged)}}

        return (await self._change_skills(account_id, pal_id, patch, vocabulary))[skill_id]

    async def delete_skill(self, account_id: str, pal_id: str, skill_id: str, vocabulary: Vocabulary) -> None:
        await self._writable(account_id, pal_id, vocabulary)
        skill(skill_id)

        def delete(skills: dict[str, Any]) -> dict[str, Any]:
            if skill_id not in skills:
                raise self._not_attached(vocabulary)
            return {key: value for key, value in skills.items() if key != skill_id}

        await self._change_skills(account_id, pal_id, delete, vocabulary)

    async def replace_skills(self, account_id: str, pal_id: str, skills: Any, vocabulary: Vocabulary) -> dict[str, Any]:
        """The PAL's whole skill map replaced by `skills` (`{"<skill_id>": {"config": {...}}}`)."""
        await self._writable(account_id, pal_id, vocabulary)
        if not isinstance(skills, dict):
            raise ValidationFailed('skills must be a JSON object: {"<skill_id>": {"config": {...}}}')
        new = {skill_id: entry(skill_id, value) for skill_id, value in skills.items()}
        return await self._change_skills(account_id, pal_id, lambda _: new, vocabulary)

    async def _change_skills(
        self,
        account_id: str,
        pal_id: str,
        edit: Callable[[dict[str, Any]], dict[str, Any]],
        vocabulary: Vocabulary,
    ) -> dict[str, Any]:
        async def change(body: dict[str, Any]) -> dict[str, Any]:
            old = dict(body.get("skills") or {})
            body["skills"] = edit(old)
            document = check_document(body, vocabulary)
            await self._check_documents(account_id, document["skills"], old)
            return document

        record = await self.personas.resources.change(account_id, pal_id, change)
        return dict(record.body["skills"])

    async def _check_documents(self, account_id: str, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Documents a presentation names must be the account's own (ones named before are left alone)."""
        before = set(old.get("presentation", {}).get("config", {}).get("document_ids") or ())
        for document_id in new.get("presentation", {}).get("config", {}).get("document_ids") or ():
            if document_id not in before and await self._store.get("document", account_id, document_id) is None:
                raise ValidationFailed(f"Invalid document_ids: {document_id}")

    # rules --------------------------------------------------------------------------------------

    async def _writable(self, account_id: str, pal_id: str, vocabulary: Vocabulary) -> None:
        """The account's own PAL: unknown, foreign and stock ones are all `Invalid pal_id`."""
        if pal_id in STOCK_DOCUMENTS:
            raise InvalidId(vocabulary.name("persona_id"))
        await self.personas.document(account_id, pal_id, vocabulary)

    @staticmethod
    def _not_attached(vocabulary: Vocabulary) -> ResourceNotFound:
        return ResourceNotFound(f"Skill not attached to this {vocabulary.noun}")
