"""Resolving an `x-api-key` to its account, fast and without stale grants.

Every `/v2` request authenticates, so a storage read per request would cost the
hot path. Lookups are cached per lookup prefix for `ttl` seconds (0.5 s by
default): a key created or revoked by the CLI on the same database takes effect
within a second, as promised. Misses are cached too, in a bounded map, so a
flood of bad keys cannot make every request hit storage or grow memory.
"""

from __future__ import annotations

import hmac

from palaver.domain.clock import Clock
from palaver.domain.keys import key_matches, lookup_of
from palaver.storage.base import ApiKeyRecord, Storage

MAX_CACHED = 10_000
MAX_KEY_LENGTH = 256


class _NotCached:
    """The answer of `account_if_cached` when only storage can tell."""


NOT_CACHED = _NotCached()


class Authenticator:
    def __init__(self, storage: Storage, clock: Clock, ttl: float = 0.5) -> None:
        self._storage = storage
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, list[ApiKeyRecord]]] = {}
        # A key already verified against its stored hash, kept only as long as
        # the cache entry it was checked against: comparing to it in constant
        # time spares a SHA-256 on every request.
        self._verified: dict[str, tuple[str, str]] = {}

    async def account_for(self, key: str | None) -> str | None:
        """The account id the key belongs to, or None for a missing, unknown or revoked key."""
        account = self.account_if_cached(key)
        if account is not NOT_CACHED:
            return account
        if key is None:  # answered above (None); this line is for the type checker
            return None
        lookup = lookup_of(key)
        records = await self._storage.find_keys(lookup)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[lookup] = (self._clock.now() + self._ttl, records)
        self._verified.pop(lookup, None)
        return self._match(key, lookup, records)

    def account_if_cached(self, key: str | None) -> str | None | _NotCached:
        """`account_for` without waiting: NOT_CACHED when storage must be asked first.

        The end endpoint's protocol path (api/end_protocol.py) answers from here and
        hands the request to the ASGI app only on NOT_CACHED.
        """
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        lookup = lookup_of(key)
        cached = self._cache.get(lookup)
        if cached is None or cached[0] <= self._clock.now():
            return NOT_CACHED
        verified = self._verified.get(lookup)
        if verified is not None and hmac.compare_digest(key.encode(), verified[0].encode()):
            return verified[1]
        return self._match(key, lookup, cached[1])

    def _match(self, key: str, lookup: str, records: list[ApiKeyRecord]) -> str | None:
        account = None
        for record in records:  # compare every candidate, so timing does not depend on which matched
            if key_matches(key, record.key_hash):
                account = record.account_id
        if account is not None:
            self._verified[lookup] = (key, account)
        return account
