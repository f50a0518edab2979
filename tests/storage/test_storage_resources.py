"""The resource store and its jobs, on every backend: scoping, order, compare-and-swap, leases."""

from __future__ import annotations

import asyncio

from palaver.storage import Storage
from palaver.storage.resources import JobRecord, ResourceRecord

AT = "2026-03-01T10:00:00.000000Z"
LATER = "2026-03-01T11:00:00.000000Z"


def persona(resource_id: str, account_id: str = "a1", **body) -> ResourceRecord:
    return ResourceRecord("persona", resource_id, account_id, {"persona_id": resource_id, **body}, 1, AT, AT)


def test_insert_get_list_newest_first_and_scoped(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for rid in ("p1", "p2", "p3"):
            await storage.resources.insert(persona(rid, persona_name=f"name {rid}", layers={"z": 1, "a": [1, "é"]}))
        await storage.resources.insert(persona("p9", "a2"))
        await storage.resources.insert(ResourceRecord("tool", "t1", "a1", {"name": "x"}, 1, AT, AT))
        got = await storage.resources.get("persona", "a1", "p2")
        assert got == persona("p2", persona_name="name p2", layers={"z": 1, "a": [1, "é"]})
        assert list(got.body) == ["persona_id", "persona_name", "layers"]  # key order kept
        assert list(got.body["layers"]) == ["z", "a"]
        assert [r.resource_id for r in await storage.resources.list("persona", "a1")] == ["p3", "p2", "p1"]
        assert [r.resource_id for r in await storage.resources.list("persona", "a2")] == ["p9"]
        assert [r.resource_id for r in await storage.resources.list("tool", "a1")] == ["t1"]
        # Another account's object, or another kind's, reads as absent.
        assert await storage.resources.get("persona", "a2", "p1") is None
        assert await storage.resources.get("tool", "a1", "p1") is None

    run(scenario())


def test_lookup_finds_an_object_by_id_alone(storage: Storage, run, records) -> None:
    """For what has no API key to scope it by (a deployment's public pages): any account's, one kind's."""

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.resources.insert(persona("p1", "a2", persona_name="theirs"))
        found = await storage.resources.lookup("persona", "p1")
        assert found is not None and found.account_id == "a2" and found.body["persona_name"] == "theirs"
        assert await storage.resources.lookup("tool", "p1") is None
        assert await storage.resources.lookup("persona", "p2") is None

    run(scenario())


def test_replace_is_a_compare_and_swap(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.resources.insert(persona("p1", persona_name="v1"))
        v2 = ResourceRecord("persona", "p1", "a1", {"persona_id": "p1", "persona_name": "v2"}, 2, AT, LATER)
        assert await storage.resources.replace(v2, expected_version=1)
        stale = ResourceRecord("persona", "p1", "a1", {"persona_id": "p1", "persona_name": "lost"}, 2, AT, LATER)
        assert not await storage.resources.replace(stale, expected_version=1)
        foreign = ResourceRecord("persona", "p1", "a2", {"persona_id": "p1", "persona_name": "x"}, 3, AT, LATER)
        assert not await storage.resources.replace(foreign, expected_version=2)
        got = await storage.resources.get("persona", "a1", "p1")
        assert got is not None and got.body["persona_name"] == "v2" and got.version == 2
        assert got.updated_at == LATER and got.created_at == AT

    run(scenario())


def test_racing_replaces_exactly_one_wins(storage: Storage, run, records) -> None:
    async def scenario() -> list[bool]:
        await storage.create_account(records.account("a1"))
        await storage.resources.insert(persona("p1"))
        attempts = [
            storage.resources.replace(
                ResourceRecord("persona", "p1", "a1", {"persona_id": "p1", "n": i}, 2, AT, LATER), expected_version=1
            )
            for i in range(20)
        ]
        return await asyncio.gather(*attempts)

    assert sorted(run(scenario())) == [False] * 19 + [True]


def test_delete_is_scoped_and_once(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        await storage.resources.insert(persona("p1"))
        assert not await storage.resources.delete("persona", "a2", "p1")
        assert await storage.resources.delete("persona", "a1", "p1")
        assert not await storage.resources.delete("persona", "a1", "p1")
        assert await storage.resources.get("persona", "a1", "p1") is None
        assert await storage.resources.list("persona", "a1") == []

    run(scenario())


def test_jobs_are_claimed_once_per_lease_and_again_after_it(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        for n in range(3):
            await storage.resources.add_job(JobRecord(f"j{n}", "training", f"r{n}", "a1", 0), 100.0 + n, 50.0)
        await storage.resources.add_job(JobRecord("other", "documents", "d1", "a1", 0), 100.0, 50.0)
        assert await storage.resources.claim_jobs(["training"], now=99.0, lease_s=30, limit=10) == []
        first = await storage.resources.claim_jobs(["training"], now=101.0, lease_s=30, limit=10)
        assert [(j.job_id, j.attempts) for j in first] == [("j0", 1), ("j1", 1)]
        # Leased: nobody claims them again before the lease ends, only what came due since.
        assert [j.job_id for j in await storage.resources.claim_jobs(["training"], 102.0, 30, 10)] == ["j2"]
        await storage.resources.finish_job("j0")
        # The holder of j1 died: after its lease, j1 is claimed again, its attempts counted; j0 never.
        again = await storage.resources.claim_jobs(["training"], now=131.5, lease_s=30, limit=10)
        assert [(j.job_id, j.attempts) for j in again] == [("j1", 2)]
        assert [j.job_id for j in await storage.resources.claim_jobs(["documents"], 131.5, 30, 10)] == ["other"]

    run(scenario())


def test_racing_claims_take_each_job_once(storage: Storage, run, records) -> None:
    async def scenario() -> list[str]:
        await storage.create_account(records.account("a1"))
        for n in range(30):
            await storage.resources.add_job(JobRecord(f"j{n:02}", "training", f"r{n}", "a1", 0), 1.0, 1.0)
        claims = await asyncio.gather(*(storage.resources.claim_jobs(["training"], 2.0, 60, 4) for _ in range(10)))
        return [j.job_id for batch in claims for j in batch]

    claimed = run(scenario())
    assert sorted(claimed) == [f"j{n:02}" for n in range(30)]


def test_an_object_and_its_job_commit_together(storage: Storage, run, records, backend) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        job = JobRecord("j1", "training", "r1", "a1", 0)
        record = ResourceRecord("replica", "r1", "a1", {"replica_id": "r1"}, 1, AT, AT)
        await storage.resources.insert(record, job, 100.0)
        # The same object again fails (the id is taken), and its job is not stored either.
        try:
            await storage.resources.insert(record, JobRecord("j2", "training", "r1", "a1", 0), 100.0)
        except backend.integrity_error:
            pass
        else:
            raise AssertionError("a second insert of the same id must fail")
        claimed = await storage.resources.claim_jobs(["training"], 101.0, 60, 10)
        assert [j.job_id for j in claimed] == ["j1"]
        # A change that loses its compare-and-swap queues no job; one that wins queues its job.
        stale = ResourceRecord("replica", "r1", "a1", {"replica_id": "r1", "n": 1}, 2, AT, LATER)
        assert not await storage.resources.replace(stale, 7, JobRecord("j3", "training", "r1", "a1", 0), 100.0)
        assert await storage.resources.replace(stale, 1, JobRecord("j4", "training", "r1", "a1", 0), 100.0)
        assert [j.job_id for j in await storage.resources.claim_jobs(["training"], 102.0, 60, 10)] == ["j4"]

    run(scenario())
