"""API key material.

Keys are long random hex strings (192 bits). Only a SHA-256 hash is stored: the
key's entropy makes a slow password hash unnecessary. The first characters are
kept in clear as a lookup index, so a request finds its candidate row by index
and then compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_BYTES = 24
LOOKUP_CHARS = 12


def new_api_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def lookup_of(key: str) -> str:
    return key[:LOOKUP_CHARS]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
