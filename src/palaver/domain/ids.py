"""Identifier formats.

Tavus conversation ids are `c` followed by lowercase hex; older ones have 11 hex
digits, newer ones 15. Palaver mints the newer form and accepts any plausible
length on lookup, so a well-formed but unknown id and a malformed one can both be
rejected without touching storage.
"""

from __future__ import annotations

import re
import secrets

_CONVERSATION_ID = re.compile(r"c[0-9a-f]{6,31}")
# Ids of the other resources: Palaver mints prefix + hex, but stock ids such as
# pipecat's `pipecat-stream` are not hex, so only length and characters are checked.
_RESOURCE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def new_conversation_id() -> str:
    return "c" + secrets.token_hex(8)[:15]


def is_conversation_id(value: str) -> bool:
    return _CONVERSATION_ID.fullmatch(value) is not None


def is_resource_id(value: str) -> bool:
    return _RESOURCE_ID.fullmatch(value) is not None


def new_account_id() -> str:
    return "a" + secrets.token_hex(6)


def new_key_id() -> str:
    return "k" + secrets.token_hex(6)
