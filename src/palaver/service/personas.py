"""Personas and PALs: create, read, list, JSON Patch, delete, and the references they hold.

A persona names other objects: its default replica, documents, guardrails, an
objectives set, tools and a pronunciation dictionary. Each must be a stock
object or one of the caller's own when it is set; a reference that was valid
when set and whose object is deleted later is left alone (deleting a
guardrail or a tool detaches it from every persona, see `detach`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palaver.domain.catalog import STOCK_PERSONAS, StockPersona
from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidId, InvalidPatch, NotModified, ReadOnly, ValidationFailed
from palaver.domain.patches import apply_patch
from palaver.domain.personas import PERSONA, READ_ONLY, check_document, new_persona_id
from palaver.domain.replicas import STOCK_CREATED_AT
from palaver.domain.vocabulary import Vocabulary
from palaver.service.replicas import ReplicaService
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceStore

KIND = "persona"
# A well-formed patch that cannot be applied (a failing `test`, a path that is not there): 422 like
# a malformed one, with the reason.
PATCH_FAILED = InvalidPatch("JSON patch could not be applied:")
# List fields that name objects of another kind, and that kind (each resource's module stores it).
LIST_REFERENCES = {"document_ids": "document", "guardrail_ids": "guardrail", "tool_ids": "tool"}
ONE_REFERENCES = {"objectives_id": "objectives", "guardrails_id": "guardrail"}


def stock_document(stock: StockPersona) -> dict[str, Any]:
    own: dict[str, Any] = {"persona_name": stock.persona_name, "pipeline_mode": stock.pipeline_mode}
    if stock.pipeline_mode == "full":
        own["system_prompt"] = stock.system_prompt
    own["default_replica_id"] = stock.default_replica_id
    stamps = {"persona_type": "system", "created_at": STOCK_CREATED_AT, "updated_at": STOCK_CREATED_AT}
    return check_document({"persona_id": stock.persona_id, **own, **stamps}, PERSONA)


STOCK_DOCUMENTS: dict[str, dict[str, Any]] = {pid: stock_document(p) for pid, p in STOCK_PERSONAS.items()}


class PersonaService:
    def __init__(self, store: ResourceStore, clock: Clock, replicas: ReplicaService) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, lambda: InvalidId("persona_id")))
        self._store = store
        self.replicas = replicas

    # reads --------------------------------------------------------------------------------------

    async def document(self, account_id: str, persona_id: str, vocabulary: Vocabulary) -> dict[str, Any]:
        """The persona's canonical document: a stock one or one of the account's."""
        stock = STOCK_DOCUMENTS.get(persona_id)
        if stock is not None:
            return stock
        record = await self.resources.find(account_id, persona_id)
        if record is None:
            raise InvalidId(vocabulary.name("persona_id"))
        return record.body

    async def list(self, account_id: str, *, persona_type: str | None) -> list[dict[str, Any]]:
        """The account's personas (newest first), then the stock ones."""
        documents: list[dict[str, Any]] = []
        if persona_type in (None, "user"):
            documents += [r.body for r in await self.resources.list(account_id)]
        if persona_type in (None, "system"):
            documents += list(STOCK_DOCUMENTS.values())
        return documents

    # writes -------------------------------------------------------------------------------------

    async def create(self, account_id: str, body: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
        fields = vocabulary.parse(body)
        for key in sorted(READ_ONLY & fields.keys()):
            raise ValidationFailed(f"{vocabulary.name(key)} is set by the server")
        if vocabulary.noun == "pal" and not fields.get("default_replica_id"):
            raise ValidationFailed("default_face_id is required")
        document = check_document(fields, vocabulary)
        await self._check_references(account_id, document, {}, vocabulary)
        persona_id = new_persona_id()
        record = await self.resources.add(account_id, persona_id, {"persona_id": persona_id, **document,
                                                                   "persona_type": "user"})  # fmt: skip
        return record.body

    async def patch(self, account_id: str, persona_id: str, operations: Any, vocabulary: Vocabulary) -> dict[str, Any]:
        """Apply an RFC 6902 patch written in the request's vocabulary, all of it or nothing."""
        self._writable(persona_id, vocabulary)
        await self.document(account_id, persona_id, vocabulary)  # unknown ids first, before the patch's own errors
        read_only = frozenset(vocabulary.name(k) for k in READ_ONLY)

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(vocabulary.render(body), operations, read_only=read_only, failed=PATCH_FAILED)
            document = check_document(vocabulary.parse(patched), vocabulary)
            await self._check_references(account_id, document, body, vocabulary)
            return document

        record = await self.resources.change(
            account_id, persona_id, change, not_modified=NotModified("No changes were made to the persona")
        )
        return record.body

    async def delete(self, account_id: str, persona_id: str, vocabulary: Vocabulary) -> None:
        self._writable(persona_id, vocabulary)
        if not await self._store.delete(KIND, account_id, persona_id):
            raise InvalidId(vocabulary.name("persona_id"))

    async def detach(self, account_id: str, field: str, resource_id: str) -> int:
        """Take `resource_id` out of list `field` (or clear it from single `field`) in every persona of
        the account that names it: what deleting a guardrail or a tool does. Returns how many changed."""
        changed = 0
        for record in await self.resources.list(account_id):
            value = record.body.get(field)
            if value != resource_id and not (isinstance(value, list) and resource_id in value):
                continue

            async def drop(body: dict[str, Any], field: str = field) -> dict[str, Any]:
                current = body.get(field)
                if isinstance(current, list):
                    body[field] = [item for item in current if item != resource_id]
                elif current == resource_id:
                    body[field] = None
                return body

            try:
                await self.resources.change(account_id, record.resource_id, drop)
                changed += 1
            except InvalidId:
                pass  # deleted meanwhile
        return changed

    async def update_list(
        self,
        account_id: str,
        persona_id: str,
        field: str,
        edit: Callable[[list[str]], list[str]],
        vocabulary: Vocabulary,
    ) -> dict[str, Any]:
        """Change one list field (PAL tools: attach and detach) with the same checks as a patch."""
        self._writable(persona_id, vocabulary)
        await self.document(account_id, persona_id, vocabulary)

        async def change(body: dict[str, Any]) -> dict[str, Any]:
            body[field] = edit(list(body.get(field) or []))
            document = check_document(body, vocabulary)
            await self._check_references(account_id, document, body, vocabulary)
            return document

        return (await self.resources.change(account_id, persona_id, change)).body

    # rules --------------------------------------------------------------------------------------

    async def _check_references(
        self, account_id: str, new: dict[str, Any], old: dict[str, Any], vocabulary: Vocabulary
    ) -> None:
        """Every reference set or added by this change names an object the account may use."""
        replica_id = new.get("default_replica_id")
        if replica_id and replica_id != old.get("default_replica_id"):
            if not await self.replicas.exists(account_id, replica_id):
                raise ValidationFailed("Invalid replica_uuid")
        for field, kind in ONE_REFERENCES.items():
            value = new.get(field)
            if value and value != old.get(field) and await self._store.get(kind, account_id, value) is None:
                raise ValidationFailed(f"Invalid {field}")
        for field, kind in LIST_REFERENCES.items():
            before = set(old.get(field) or ())
            for value in new.get(field) or ():
                if value not in before and await self._store.get(kind, account_id, value) is None:
                    raise ValidationFailed(f"Invalid {vocabulary.name(field)}: {value}")
        tts = new.get("layers", {}).get("tts", {})
        dictionary = tts.get("pronunciation_dictionary_id")
        old_dictionary = old.get("layers", {}).get("tts", {}).get("pronunciation_dictionary_id")
        if (
            dictionary
            and dictionary != old_dictionary
            and await self._store.get("dictionary", account_id, dictionary) is None
        ):
            raise ValidationFailed("Invalid pronunciation_dictionary_id")

    @staticmethod
    def _writable(persona_id: str, vocabulary: Vocabulary) -> None:
        if persona_id in STOCK_DOCUMENTS:
            raise ReadOnly(f"Stock {vocabulary.noun}s cannot be changed or deleted")


def _dictionary_of(document: dict[str, Any]) -> Any:
    return (document.get("layers") or {}).get("tts", {}).get("pronunciation_dictionary_id")
