"""Accounts and API keys in storage."""

from __future__ import annotations

import base64

import pytest

from palaver.storage import Storage
from palaver.storage.base import ApiKeyRecord

LOOKUP = "0123456789ab"


def key(key_id: str, account_id: str, lookup: str = LOOKUP, revoked_at: str | None = None) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id,
        account_id,
        f"name-{key_id}",
        lookup,
        (key_id * 64)[:64],
        f"2026-01-01T00:00:0{key_id[-1]}.000000Z",
        revoked_at,
    )


def test_account_round_trip(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        a1, a2 = records.account("a1"), records.account("a2", max_concurrent=3)
        await storage.create_account(a1)
        await storage.create_account(a2)
        assert await storage.get_account("a1") == a1
        assert await storage.get_account("a2") == a2
        assert await storage.get_account("nope") is None

    run(scenario())


def test_set_max_concurrent_changes_only_that_account(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2", max_concurrent=9))
        await storage.set_max_concurrent("a1", 5)
        assert (await storage.get_account("a1")).max_concurrent == 5
        assert (await storage.get_account("a2")).max_concurrent == 9
        await storage.set_max_concurrent("a1", None)
        assert (await storage.get_account("a1")).max_concurrent is None

    run(scenario())


def test_find_keys_by_lookup_excludes_revoked_and_other_lookups(storage: Storage, run, records) -> None:
    k1, k2 = key("k1", "a1"), key("k2", "a2")
    k3 = key("k3", "a1", revoked_at="2026-01-02T00:00:00.000000Z")
    k4 = key("k4", "a1", lookup="ba9876543210")

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for k in (k1, k2, k3, k4):
            await storage.add_key(k)
        found = await storage.find_keys(LOOKUP)
        assert sorted(found, key=lambda r: r.key_id) == [k1, k2]
        assert await storage.find_keys("ba9876543210") == [k4]
        assert await storage.find_keys("000000000000") == []
        assert await storage.find_keys(LOOKUP[:6]) == []  # exact lookup, not a prefix search

    run(scenario())


def test_revoke_once_then_false(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.add_key(key("k1", "a1"))
        await storage.add_key(key("k2", "a1"))
        assert await storage.revoke_key("k1", "2026-01-03T00:00:00.000000Z") is True
        assert await storage.revoke_key("k1", "2026-01-04T00:00:00.000000Z") is False
        assert await storage.revoke_key("no-such-key", "2026-01-04T00:00:00.000000Z") is False
        assert [k.key_id for k in await storage.find_keys(LOOKUP)] == ["k2"]
        listed = {k.key_id: k for k in await storage.list_keys()}
        assert listed["k1"].revoked_at == "2026-01-03T00:00:00.000000Z"  # the first revocation's time stays
        assert listed["k2"].revoked_at is None

    run(scenario())


def test_list_and_count_keys_include_revoked(storage: Storage, run, records) -> None:
    keys = [key("k1", "a1"), key("k2", "a2", revoked_at="2026-01-02T00:00:00.000000Z"), key("k3", "a1", "x" * 12)]

    async def scenario() -> None:
        assert await storage.count_keys() == 0
        assert await storage.list_keys() == []
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        for k in keys:
            await storage.add_key(k)
        assert sorted(await storage.list_keys(), key=lambda r: r.key_id) == keys
        assert await storage.count_keys() == 3

    run(scenario())


def test_each_account_has_its_own_signing_secret_from_the_start(storage: Storage, run, records) -> None:
    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        secrets = await storage.webhook_secrets()
        assert set(secrets) == {"a1", "a2"} and secrets["a1"] != secrets["a2"]
        for secret in secrets.values():
            assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        assert await storage.webhook_secret("a1") == secrets["a1"]
        rotated = await storage.rotate_webhook_secret("a1")
        assert rotated not in (None, secrets["a1"])
        assert await storage.webhook_secrets() == {"a1": rotated, "a2": secrets["a2"]}
        with pytest.raises(KeyError):
            await storage.webhook_secret("nope")

    run(scenario())


def test_migrate_gives_accounts_from_before_secrets_one_and_reading_them_writes_nothing(
    storage: Storage, backend, run, records
) -> None:
    """The delivery worker reads the secrets; it must never be the one that writes them."""

    async def scenario() -> None:
        await storage.create_account(records.account("a1"))
        await storage.create_account(records.account("a2"))
        kept = (await storage.webhook_secrets())["a2"]
        backend.forget_webhook_secret("a1")
        assert await storage.webhook_secrets() == {"a2": kept}
        assert await storage.webhook_secrets() == {"a2": kept}  # still nothing: reading gave a1 none
        await storage.migrate()
        secrets = await storage.webhook_secrets()
        assert secrets["a2"] == kept
        assert secrets["a1"].startswith("whsec_") and len(base64.b64decode(secrets["a1"][6:])) == 32

    run(scenario())
