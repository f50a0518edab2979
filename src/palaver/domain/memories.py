"""Memory stores: what a PAL remembers about a user across conversations (reference 11).

A conversation names its stores in `memory_stores` (free-form keys such as
`"anna_p123"`); the PAL reads what they hold and writes to them. Palaver runs
no language model, so the one thing it writes is the PAL's own seed lines
(`memories` on the PAL): each store a conversation names receives each of its
PAL's seed lines once. A store belongs to the account that wrote it: two
accounts may use the same key and get two separate stores, which is why the
storage key is derived from the account and the store's name.
"""

from __future__ import annotations

import hashlib
import re
import secrets

# The store names Palaver keeps: what fits in one URL path segment without escaping.
_STORE_NAME = re.compile(r"[A-Za-z0-9_.:@\-]{1,128}")
_MEMORY_ID = re.compile(r"mem_[0-9a-f]{1,32}")
MAX_MEMORIES = 10_000  # per store; the oldest are dropped beyond it


def is_store_name(value: str) -> bool:
    return _STORE_NAME.fullmatch(value) is not None


def is_memory_id(value: str) -> bool:
    return _MEMORY_ID.fullmatch(value) is not None


def storage_key(account_id: str, store_name: str) -> str:
    """The store's resource id: unique per (account, name), never shown to clients."""
    return "m" + hashlib.sha256(f"{account_id}\x00{store_name}".encode()).hexdigest()[:40]


def new_memory_id() -> str:
    return "mem_" + secrets.token_hex(8)
