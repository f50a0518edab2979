"""Meeting tokens for `require_auth` rooms.

Tavus returns a JWT (`eyJ...`); clients only pass it on to the room. Palaver
mints a JWT-shaped HS256 token signed with a per-token random secret and keeps
the token itself, so the room can check it by equality and expiry alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def meeting_token(conversation_id: str, issued_at: float, expires_at: float) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"r": conversation_id, "iat": int(issued_at), "exp": int(expires_at), "o": False}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secrets.token_bytes(32), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
