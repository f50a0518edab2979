"""The storage interface for the resources conversations are made of, and for their background jobs.

Personas/PALs, replicas/faces, tools, objectives, guardrails, dictionaries and
documents are each a JSON object owned by one account. Their rules differ, their
storage does not: one table holds them all (`kind` tells them apart), and each
resource's service module owns its own rules. Lists are read whole per account
and kind and filtered and paged by the service: an account holds tens to
thousands of such objects, never millions, and the filters differ per resource
(docs/decisions.md).

Every change of an existing object is a compare-and-swap on its `version`, so a
JSON Patch or an attach computed from a read can never overwrite a change made
in between, whichever process made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


def dump(body: dict[str, Any]) -> str:
    """The stored text of a body: compact, key order kept, the same on both backends."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    kind: str
    resource_id: str
    account_id: str
    body: dict[str, Any]
    version: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Callback:
    """A webhook about a resource rather than a conversation.

    `key` stands where a conversation id stands in the outbox and the ledger: one
    delivery per (key, event_type), in order per key. It must not contain a dot
    (event ids are `<key>.<event_type>`).
    """

    key: str
    account_id: str
    event_type: str
    url: str
    body: dict[str, Any]

    def detail(self) -> str:
        """What the outbox row carries: everything the delivery worker needs to render it."""
        return dump({"account_id": self.account_id, "event_type": self.event_type, "url": self.url,
                     "body": dump(self.body)})  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobRecord:
    """Background work on one resource.

    `attempts` counts claims, so a job that kills its process is not retried forever.
    """

    job_id: str
    kind: str
    resource_id: str
    account_id: str
    attempts: int


class ResourceStore(Protocol):
    async def insert(self, record: ResourceRecord, job: JobRecord | None = None, at_epoch: float = 0.0) -> None:
        """Store a new object (version 1), and with it, in the same transaction, the job that works on it
        (due from `at_epoch`): a crash can leave neither an object waiting for a job that was never
        queued nor a job for an object that was never stored."""
        ...

    async def get(self, kind: str, account_id: str, resource_id: str) -> ResourceRecord | None:
        """The object if it exists and belongs to this account."""
        ...

    async def lookup(self, kind: str, resource_id: str) -> ResourceRecord | None:
        """The object by id alone, whichever account owns it (ids are unique per kind).

        Only for what has no API key to scope it by: a deployment's public pages.
        """
        ...

    async def list(self, kind: str, account_id: str) -> list[ResourceRecord]:
        """Every object of this kind the account owns, newest first."""
        ...

    async def replace(
        self, record: ResourceRecord, expected_version: int, job: JobRecord | None = None, at_epoch: float = 0.0
    ) -> bool:
        """Store `record.body` (and `updated_at`) as version `expected_version + 1`, and the job if given,
        in one transaction; False (and no job) if the object is gone or was changed since `expected_version`."""
        ...

    async def delete(self, kind: str, account_id: str, resource_id: str) -> bool:
        """Remove the object; False if there was none of this account's."""
        ...

    async def enqueue_callback(self, callback: Callback, at_epoch: float) -> None:
        """Queue a resource's callback (training done, document status) on the webhook outbox.

        Delivered like conversation webhooks: signed, retried, in order per key. Its
        event id is stable, so queueing the same callback twice (a job run again after
        a crash) delivers it once.
        """
        ...

    # jobs -----------------------------------------------------------------------------------------

    async def add_job(self, job: JobRecord, run_after_epoch: float, created_epoch: float) -> None: ...

    async def claim_jobs(self, kinds: list[str], now: float, lease_s: float, limit: int) -> list[JobRecord]:
        """Pending jobs of these kinds that are due, each leased until `now + lease_s` (its attempts
        counted): nobody else claims it before, and if its holder dies it is claimed again after."""
        ...

    async def retry_job(self, job_id: str, run_after_epoch: float) -> None:
        """Release the job's lease early: claimable again from `run_after_epoch`."""
        ...

    async def finish_job(self, job_id: str) -> None:
        """The job is done (or given up): never claimed again."""
        ...
