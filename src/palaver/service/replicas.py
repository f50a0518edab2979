"""Replicas and faces: stock and the account's own, read, renamed, deleted.

Training a new replica (`POST /v2/replicas`) is a durable job of its own
(service/replica_training.py); this module is what every replica shares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from palaver.domain.clock import Clock
from palaver.domain.errors import InvalidId, ReadOnly, ValidationFailed
from palaver.domain.replicas import STOCK_DOCUMENTS, shown
from palaver.domain.vocabulary import Vocabulary
from palaver.service.resources import ResourceKind, Resources
from palaver.storage.resources import ResourceRecord, ResourceStore

KIND = "replica"
MAX_NAME = 200


class ReplicaService:
    def __init__(self, store: ResourceStore, clock: Clock) -> None:
        self.resources = Resources(store, clock, ResourceKind(KIND, lambda: InvalidId("replica_id")))
        # Run on a hard delete with the deleted document: whoever stores files for a replica registers one.
        self.purge_hooks: list[Callable[[dict[str, Any]], Awaitable[None]]] = []

    async def exists(self, account_id: str, replica_id: str) -> bool:
        """Whether a persona may name this replica as its default: a stock one or one of the account's."""
        return replica_id in STOCK_DOCUMENTS or await self.resources.find(account_id, replica_id) is not None

    async def usable(self, account_id: str, replica_id: str) -> bool:
        """Whether a conversation or a persona may name this replica: a stock one or one of the account's.

        One still training, or whose training failed, is refused too: Tavus cannot start a call with it.
        """
        if replica_id in STOCK_DOCUMENTS:
            return True
        record = await self.resources.find(account_id, replica_id)
        return record is not None and record.body.get("status") == "completed"

    async def document(self, account_id: str, replica_id: str, vocabulary: Vocabulary) -> dict[str, Any]:
        stock = STOCK_DOCUMENTS.get(replica_id)
        if stock is not None:
            return stock
        record = await self.resources.find(account_id, replica_id)
        if record is None:
            raise InvalidId(vocabulary.name("replica_id"))
        return record.body

    async def get(self, account_id: str, replica_id: str, vocabulary: Vocabulary, *, verbose: bool) -> dict[str, Any]:
        return shown(await self.document(account_id, replica_id, vocabulary), vocabulary, verbose=verbose)

    async def list(
        self,
        account_id: str,
        vocabulary: Vocabulary,
        *,
        replica_type: str | None,
        replica_ids: set[str] | None,
        model_name: str | None,
        verbose: bool,
    ) -> list[dict[str, Any]]:
        """The account's replicas (newest first), then the stock ones, under the filters given."""
        documents: list[dict[str, Any]] = []
        if replica_type in (None, "user"):
            documents += [r.body for r in await self.resources.list(account_id)]
        if replica_type in (None, "system"):
            documents += list(STOCK_DOCUMENTS.values())
        return [
            shown(d, vocabulary, verbose=verbose)
            for d in documents
            if (replica_ids is None or d["replica_id"] in replica_ids)
            and (model_name is None or d["model_name"] == model_name)
        ]

    async def rename(self, account_id: str, replica_id: str, name: Any, vocabulary: Vocabulary) -> dict[str, Any]:
        field = vocabulary.name("replica_name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationFailed(f"{field} is required")
        if len(name) > MAX_NAME:
            raise ValidationFailed(f"{field} must be at most {MAX_NAME} characters")
        self._writable(replica_id, vocabulary)

        async def rename(body: dict[str, Any]) -> dict[str, Any]:
            body["replica_name"] = name
            return body

        record = await self._own(account_id, replica_id, vocabulary)
        record = await self.resources.change(account_id, record.resource_id, rename)
        return shown(record.body, vocabulary, verbose=False)

    async def delete(self, account_id: str, replica_id: str, vocabulary: Vocabulary, *, hard: bool) -> None:
        """Remove the replica; conversations made with it keep its id. With `hard`, every purge hook
        (the training job's footage and thumbnail) runs on the deleted document too."""
        self._writable(replica_id, vocabulary)
        record = await self._own(account_id, replica_id, vocabulary)
        await self.resources.remove(account_id, replica_id)
        if hard:
            for purge in self.purge_hooks:
                await purge(record.body)

    async def _own(self, account_id: str, replica_id: str, vocabulary: Vocabulary) -> ResourceRecord:
        record = await self.resources.find(account_id, replica_id)
        if record is None:
            raise InvalidId(vocabulary.name("replica_id"))
        return record

    @staticmethod
    def _writable(replica_id: str, vocabulary: Vocabulary) -> None:
        if replica_id in STOCK_DOCUMENTS:
            raise ReadOnly(f"Stock {vocabulary.noun}s cannot be changed or deleted")
