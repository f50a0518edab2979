"""Meeting tokens (palaver.domain.tokens): JWT-shaped, signed with a shared secret, checked statelessly."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from palaver.domain.tokens import meeting_token, token_admits

PART = re.compile(r"[A-Za-z0-9_-]+")
SECRET = b"s" * 32
OTHER = b"o" * 32


def _decode(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token_is_three_unpadded_base64url_parts() -> None:
    token = meeting_token(SECRET, "c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    parts = token.split(".")
    assert len(parts) == 3
    for part in parts:
        assert PART.fullmatch(part), part
    assert token.startswith("eyJ")  # JWT-shaped, as Tavus returns
    assert _decode(parts[0]) == {"alg": "HS256", "typ": "JWT"}


@pytest.mark.parametrize(("issued", "ttl"), [(1_770_000_000.0, 300), (1_770_000_000.75, 60), (1_700_000_123.0, 86_400)])
def test_payload_names_the_room_and_expiry(issued: float, ttl: int) -> None:
    payload = _decode(meeting_token(SECRET, "c0123456789abcd", issued, issued + ttl).split(".")[1])
    assert payload["r"] == "c0123456789abcd"
    assert payload["exp"] == int(issued) + ttl
    assert payload["iat"] == int(issued)


def test_tokens_for_one_room_differ() -> None:
    a = meeting_token(SECRET, "c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    b = meeting_token(SECRET, "c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    assert a != b


def test_token_admits_its_room_until_it_expires() -> None:
    token = meeting_token(SECRET, "c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    assert token_admits(SECRET, token, "c477c9dd7aa6e4f", 1_770_000_299.0)
    assert not token_admits(SECRET, token, "c477c9dd7aa6e4f", 1_770_000_300.0)  # expired
    assert not token_admits(SECRET, token, "c000000000000aa", 1_770_000_100.0)  # another room
    assert not token_admits(OTHER, token, "c477c9dd7aa6e4f", 1_770_000_100.0)  # another server
    assert not token_admits(SECRET, token[:-2] + "xx", "c477c9dd7aa6e4f", 1_770_000_100.0)  # tampered
    assert not token_admits(SECRET, "not a token", "c477c9dd7aa6e4f", 1_770_000_100.0)
