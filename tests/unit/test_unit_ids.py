"""Identifier formats (palaver.domain.ids)."""

from __future__ import annotations

import re

import pytest

from palaver.domain.ids import is_conversation_id, new_account_id, new_conversation_id, new_key_id

NEW_ID = re.compile(r"^c[0-9a-f]{15}$")


def test_new_conversation_id_has_the_current_tavus_shape() -> None:
    for _ in range(200):
        cid = new_conversation_id()
        assert NEW_ID.fullmatch(cid), cid


def test_new_conversation_ids_are_random() -> None:
    ids = {new_conversation_id() for _ in range(1000)}
    assert len(ids) == 1000
    # Every hex position varies: no fixed or counter-like part.
    for position in range(1, 16):
        assert len({cid[position] for cid in ids}) > 8, position


def test_minted_ids_are_accepted_by_the_checker() -> None:
    assert all(is_conversation_id(new_conversation_id()) for _ in range(100))


@pytest.mark.parametrize(
    "value",
    [
        "c477c9dd7aa6e4f",  # 15 hex, the current form
        "c0123456789a",  # c + 11 hex, the older form
        "cabcdef01234",
    ],
)
def test_accepts_old_and_new_lengths(value: str) -> None:
    assert is_conversation_id(value)


def test_accepts_exactly_eleven_and_fifteen_hex_digits() -> None:
    assert is_conversation_id("c" + "a1" * 5 + "b")  # 11
    assert is_conversation_id("c" + "0f" * 7 + "e")  # 15


@pytest.mark.parametrize(
    "value",
    [
        "",
        "c",
        "C477C9DD7AA6E4F",
        "c477C9dd7aa6e4f",  # one uppercase digit
        "c477c9dd7aa6e4g",  # not hex
        "x477c9dd7aa6e4f",  # wrong prefix
        "477c9dd7aa6e4f",  # no prefix
        "c477c9dd/7aa6e4",
        "c477c9dd7aa6e4f/",
        "../x",
        "c/../c477c9dd7aa6e4f",
        "c" + "0" * 40,
        "c477c9dd7aa6e4f\n",  # trailing newline (a `$`-anchored regex would accept it)
        " c477c9dd7aa6e4f",
        "c477c9dd7aa6e4f ",
        "c477c9dd7aa6e4f%00",
        "c-477c9dd7aa6e4f",
    ],
)
def test_rejects_malformed_ids(value: str) -> None:
    assert not is_conversation_id(value)


def test_account_and_key_ids_are_prefixed_and_random() -> None:
    accounts = {new_account_id() for _ in range(500)}
    keys = {new_key_id() for _ in range(500)}
    assert len(accounts) == 500 and len(keys) == 500
    assert all(re.fullmatch(r"a[0-9a-f]{12}", a) for a in accounts)
    assert all(re.fullmatch(r"k[0-9a-f]{12}", k) for k in keys)
