"""Meeting tokens (palaver.domain.tokens)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from palaver.domain.tokens import meeting_token

PART = re.compile(r"[A-Za-z0-9_-]+")


def _decode(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token_is_three_unpadded_base64url_parts() -> None:
    token = meeting_token("c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    parts = token.split(".")
    assert len(parts) == 3
    for part in parts:
        assert PART.fullmatch(part), part
    assert token.startswith("eyJ")  # JWT-shaped, as Tavus returns


def test_header_declares_hs256_jwt() -> None:
    header = _decode(meeting_token("c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0).split(".")[0])
    assert header == {"alg": "HS256", "typ": "JWT"}


@pytest.mark.parametrize(("issued", "ttl"), [(1_770_000_000.0, 300), (1_770_000_000.75, 60), (1_700_000_123.0, 86_400)])
def test_payload_names_the_room_and_expiry(issued: float, ttl: int) -> None:
    payload = _decode(meeting_token("c0123456789abcd", issued, issued + ttl).split(".")[1])
    assert payload["r"] == "c0123456789abcd"
    assert payload["exp"] == int(issued) + ttl
    assert isinstance(payload["exp"], int)
    assert payload["iat"] == int(issued)
    assert isinstance(payload["iat"], int)


def test_signature_is_32_bytes_and_tokens_are_unguessable() -> None:
    """Each token is signed with a fresh secret: the same claims never give the same token."""
    a = meeting_token("c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    b = meeting_token("c477c9dd7aa6e4f", 1_770_000_000.0, 1_770_000_300.0)
    assert a.split(".")[:2] == b.split(".")[:2]
    assert a != b
    sig = a.split(".")[2]
    assert len(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))) == 32
