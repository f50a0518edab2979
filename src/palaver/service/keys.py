"""Operator use cases for accounts and API keys (the `palaver keys` commands)."""

from __future__ import annotations

from dataclasses import dataclass

from palaver.domain.clock import Clock, iso_timestamp
from palaver.domain.errors import PalaverError
from palaver.domain.ids import new_account_id, new_key_id
from palaver.domain.keys import hash_key, lookup_of, new_api_key
from palaver.storage.base import AccountRecord, ApiKeyRecord, Storage


@dataclass(frozen=True, slots=True)
class IssuedKey:
    account_id: str
    key_id: str
    key: str  # shown once, never stored


class UnknownAccount(PalaverError):
    pass


async def issue_key(
    storage: Storage, clock: Clock, *, name: str = "", account_id: str | None = None, max_concurrent: int | None = None
) -> IssuedKey:
    """Create a key; with no account given, a new account to hold it."""
    now = iso_timestamp(clock.now())
    if account_id is None:
        account_id = new_account_id()
        await storage.create_account(AccountRecord(account_id, name, max_concurrent, now))
    else:
        if await storage.get_account(account_id) is None:
            raise UnknownAccount(f"no account {account_id}")
        if max_concurrent is not None:
            await storage.set_max_concurrent(account_id, max_concurrent)
    key = new_api_key()
    key_id = new_key_id()
    await storage.add_key(ApiKeyRecord(key_id, account_id, name, lookup_of(key), hash_key(key), now, None))
    return IssuedKey(account_id, key_id, key)
