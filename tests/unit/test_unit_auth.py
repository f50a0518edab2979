"""API key resolution with its short-lived cache (palaver.service.auth.Authenticator)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from palaver.domain.clock import ManualClock
from palaver.domain.keys import hash_key, lookup_of, new_api_key
from palaver.service import auth as auth_module
from palaver.service.auth import MAX_KEY_LENGTH, Authenticator
from palaver.storage.base import ApiKeyRecord, Storage

TTL = 0.5


class FakeKeyStore:
    """Just enough storage for the Authenticator: active keys by lookup, and a call log."""

    def __init__(self) -> None:
        self.records: list[ApiKeyRecord] = []
        self.calls: list[str] = []

    def add(self, key: str, account_id: str, key_id: str | None = None) -> ApiKeyRecord:
        record = ApiKeyRecord(
            key_id or f"k{len(self.records):012x}", account_id, "", lookup_of(key), hash_key(key), "t", None
        )
        self.records.append(record)
        return record

    def revoke(self, key: str) -> None:
        self.records = [r for r in self.records if r.key_hash != hash_key(key)]

    async def find_keys(self, lookup: str) -> list[ApiKeyRecord]:
        self.calls.append(lookup)
        return [r for r in self.records if r.lookup == lookup and r.revoked_at is None]


def _other_key_same_lookup(key: str) -> str:
    """A different key that shares `key`'s lookup prefix."""
    tail = "".join("0" if c != "0" else "1" for c in key[12:])
    return key[:12] + tail


def make() -> tuple[Authenticator, FakeKeyStore, ManualClock]:
    store = FakeKeyStore()
    clock = ManualClock()
    return Authenticator(cast(Storage, store), clock, ttl=TTL), store, clock


def resolve(authenticator: Authenticator, key: Any) -> str | None:
    return asyncio.run(authenticator.account_for(key))


def test_valid_key_resolves_to_its_account() -> None:
    authenticator, store, _ = make()
    key = new_api_key()
    store.add(key, "a1")
    assert resolve(authenticator, key) == "a1"


def test_wrong_key_with_the_same_lookup_is_refused() -> None:
    """The lookup prefix only finds the candidate row; the full key must match its hash."""
    authenticator, store, _ = make()
    key = new_api_key()
    store.add(key, "a1")
    assert resolve(authenticator, _other_key_same_lookup(key)) is None


def test_wrong_key_is_refused_even_right_after_the_right_key_was_verified() -> None:
    """The verified-key shortcut must not let a sibling key with the same lookup through."""
    authenticator, store, _ = make()
    key = new_api_key()
    store.add(key, "a1")

    async def scenario() -> list[str | None]:
        return [
            await authenticator.account_for(key),
            await authenticator.account_for(_other_key_same_lookup(key)),
            await authenticator.account_for(key[:-1]),
            await authenticator.account_for(key + "0"),
            await authenticator.account_for(key),
        ]

    assert asyncio.run(scenario()) == ["a1", None, None, None, "a1"]


def test_unknown_key_is_refused() -> None:
    authenticator, store, _ = make()
    store.add(new_api_key(), "a1")
    assert resolve(authenticator, new_api_key()) is None


def test_keys_sharing_a_lookup_resolve_to_their_own_accounts() -> None:
    authenticator, store, _ = make()
    key = new_api_key()
    sibling = _other_key_same_lookup(key)
    store.add(key, "a1")
    store.add(sibling, "a2")

    async def scenario() -> list[str | None]:
        return [await authenticator.account_for(k) for k in (key, sibling, key, sibling)]

    assert asyncio.run(scenario()) == ["a1", "a2", "a1", "a2"]


@pytest.mark.parametrize("key", [None, "", "x" * (MAX_KEY_LENGTH + 1), "0" * 10_000])
def test_missing_or_oversized_key_is_refused_without_storage(key: str | None) -> None:
    authenticator, store, _ = make()
    store.add("0" * 48, "a1")  # a real key whose lookup the long ones share
    assert resolve(authenticator, key) is None
    assert store.calls == []


def test_a_key_of_the_maximum_length_is_still_looked_up() -> None:
    authenticator, store, _ = make()
    key = "f" * MAX_KEY_LENGTH
    store.add(key, "a1")
    assert resolve(authenticator, key) == "a1"


def test_second_call_within_ttl_uses_the_cache() -> None:
    authenticator, store, clock = make()
    key = new_api_key()
    store.add(key, "a1")

    async def scenario() -> None:
        assert await authenticator.account_for(key) == "a1"
        clock.advance(TTL * 0.9)
        assert await authenticator.account_for(key) == "a1"
        assert await authenticator.account_for(key) == "a1"

    asyncio.run(scenario())
    assert store.calls == [lookup_of(key)]


def test_cache_expires_after_ttl() -> None:
    authenticator, store, clock = make()
    key = new_api_key()
    store.add(key, "a1")

    async def scenario() -> None:
        await authenticator.account_for(key)
        clock.advance(TTL + 0.001)
        assert await authenticator.account_for(key) == "a1"

    asyncio.run(scenario())
    assert len(store.calls) == 2


def test_revoked_key_is_refused_once_the_cache_expires() -> None:
    """A revocation by the CLI takes effect within the ttl, not never."""
    authenticator, store, clock = make()
    key = new_api_key()
    store.add(key, "a1")

    async def scenario() -> list[str | None]:
        seen = [await authenticator.account_for(key)]
        store.revoke(key)
        clock.advance(TTL + 0.001)
        seen.append(await authenticator.account_for(key))
        seen.append(await authenticator.account_for(key))  # and stays refused
        return seen

    assert asyncio.run(scenario()) == ["a1", None, None]


def test_new_key_is_accepted_once_the_cached_miss_expires() -> None:
    authenticator, store, clock = make()
    key = new_api_key()

    async def scenario() -> list[str | None]:
        seen = [await authenticator.account_for(key)]
        store.add(key, "a1")
        seen.append(await authenticator.account_for(key))  # the miss is still cached
        clock.advance(TTL + 0.001)
        seen.append(await authenticator.account_for(key))
        return seen

    assert asyncio.run(scenario()) == [None, None, "a1"]
    assert len(store.calls) == 2


def test_misses_are_cached() -> None:
    """A flood of one bad key costs one storage read per ttl."""
    authenticator, store, clock = make()
    bad = new_api_key()

    async def scenario() -> None:
        for _ in range(50):
            assert await authenticator.account_for(bad) is None
        clock.advance(TTL + 0.001)
        for _ in range(50):
            assert await authenticator.account_for(bad) is None

    asyncio.run(scenario())
    assert store.calls == [lookup_of(bad)] * 2


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many distinct bad keys never grow the cache beyond MAX_CACHED, and good keys keep working."""
    limit = 8
    monkeypatch.setattr(auth_module, "MAX_CACHED", limit)
    authenticator, store, _ = make()
    good = new_api_key()
    store.add(good, "a1")

    async def scenario() -> None:
        for i in range(100):
            assert await authenticator.account_for(new_api_key()) is None
            assert len(authenticator._cache) <= limit
            if i % 10 == 0:
                assert await authenticator.account_for(good) == "a1"
                assert len(authenticator._cache) <= limit

    asyncio.run(scenario())
    assert len(store.calls) > 100  # every distinct bad key was looked up
