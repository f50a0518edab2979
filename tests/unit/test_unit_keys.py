"""API key material (palaver.domain.keys)."""

from __future__ import annotations

import hashlib
import re

from palaver.domain.keys import hash_key, key_matches, lookup_of, new_api_key

HEX = re.compile(r"[0-9a-f]+")
LOOKUP = 12  # characters of the key kept in clear as an index


def test_key_is_48_lowercase_hex_chars() -> None:
    """48 hex characters are 192 bits; at least 128 are required."""
    key = new_api_key()
    assert len(key) == 48
    assert HEX.fullmatch(key)
    assert len(key) * 4 >= 128


def test_keys_are_random() -> None:
    keys = {new_api_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert len({k[:LOOKUP] for k in keys}) > 990  # the lookup index spreads too


def test_lookup_is_a_short_prefix_of_the_key() -> None:
    key = new_api_key()
    assert lookup_of(key) == key[:LOOKUP]
    assert key.startswith(lookup_of(key))


def test_the_part_not_kept_in_clear_still_has_128_bits() -> None:
    """The lookup is stored unhashed, so the rest of the key alone must carry the entropy."""
    key = new_api_key()
    secret_hex_chars = len(key) - len(lookup_of(key))
    assert secret_hex_chars * 4 >= 128


def test_hash_is_sha256_hex_of_the_whole_key() -> None:
    key = new_api_key()
    digest = hash_key(key)
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_key(key) == digest  # unsalted: the same key always gives the same hash


def test_hash_depends_on_the_secret_part() -> None:
    key = new_api_key()
    other = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert hash_key(key) != hash_key(other)


def test_hash_accepts_any_string() -> None:
    """Keys arrive from headers; odd characters must hash, not raise."""
    assert len(hash_key("ü\ud800x")) == 64


def test_key_matches_only_its_own_hash() -> None:
    key, other = new_api_key(), new_api_key()
    assert key_matches(key, hash_key(key)) is True
    assert key_matches(other, hash_key(key)) is False
    assert key_matches(key[:-1] + ("a" if key[-1] != "a" else "b"), hash_key(key)) is False
    assert key_matches(key, "") is False
    assert key_matches(key, key) is False  # comparing to the key itself is not a match
