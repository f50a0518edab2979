"""What every stored resource shares: ids, account scoping, stamps, compare-and-swap changes.

A resource's own module (service/personas.py, ...) says what its objects look
like and which rules they obey; this class keeps the mechanics in one place:
an object another account owns reads exactly like one that does not exist
(the resource's own `missing` error), every change is a read-modify-write
retried on a concurrent change (the store's version check), and stock objects
are never written.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from palaver.domain.clock import Clock, iso_timestamp
from palaver.domain.errors import NotModified, PalaverError
from palaver.storage.resources import JobRecord, ResourceRecord, ResourceStore

# A change retried this many times against concurrent writers before it gives up (with the
# last conflict's error): each retry re-reads, so only a hot object under constant writes gets here.
MAX_ATTEMPTS = 20


class ChangeConflict(PalaverError):
    """The object kept changing under a read-modify-write."""


@dataclass(frozen=True, slots=True)
class ResourceKind:
    kind: str  # the storage kind
    missing: Callable[[], PalaverError]  # what an unknown, malformed or foreign id raises
    stamps: bool = True  # keep `created_at` / `updated_at` in the body


class Resources:
    def __init__(self, store: ResourceStore, clock: Clock, spec: ResourceKind) -> None:
        self.store = store
        self.clock = clock
        self.spec = spec

    def stamp(self) -> str:
        return iso_timestamp(self.clock.now())

    async def add(
        self, account_id: str, resource_id: str, body: dict[str, Any], *, job: JobRecord | None = None
    ) -> ResourceRecord:
        """Store a new object (and the job that works on it, in the same transaction); with `stamps`,
        its `created_at`/`updated_at` are set here."""
        stamp = self.stamp()
        if self.spec.stamps:
            body = {**body, "created_at": stamp, "updated_at": stamp}
        record = ResourceRecord(self.spec.kind, resource_id, account_id, body, 1, stamp, stamp)
        await self.store.insert(record, job, self.clock.now())
        return record

    async def find(self, account_id: str, resource_id: str) -> ResourceRecord | None:
        return await self.store.get(self.spec.kind, account_id, resource_id)

    async def get(self, account_id: str, resource_id: str) -> ResourceRecord:
        record = await self.find(account_id, resource_id)
        if record is None:
            raise self.spec.missing()
        return record

    async def list(self, account_id: str) -> list[ResourceRecord]:
        return await self.store.list(self.spec.kind, account_id)

    async def change(
        self,
        account_id: str,
        resource_id: str,
        change: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        *,
        not_modified: NotModified | None = None,
        job: JobRecord | None = None,
    ) -> ResourceRecord:
        """Apply `change` (given a copy of the body; it may raise, and may read other objects) and store the result.

        If the result equals the stored body: `not_modified` is raised when given,
        else the stored record is returned unchanged. `job` is queued with the change, in the
        same transaction.
        """
        for _ in range(MAX_ATTEMPTS):
            record = await self.get(account_id, resource_id)
            body = await change(copy.deepcopy(record.body))
            if body == record.body:
                if not_modified is not None:
                    raise not_modified
                return record
            stamp = self.stamp()
            if self.spec.stamps:
                body["updated_at"] = stamp
            version = record.version + 1
            new = ResourceRecord(record.kind, resource_id, account_id, body, version, record.created_at, stamp)
            if await self.store.replace(new, record.version, job, self.clock.now()):
                return new
        raise ChangeConflict("The object changed too often while this change was applied; try again")

    async def remove(self, account_id: str, resource_id: str) -> None:
        if not await self.store.delete(self.spec.kind, account_id, resource_id):
            raise self.spec.missing()
