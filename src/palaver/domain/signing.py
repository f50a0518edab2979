"""Webhook signatures in the Standard Webhooks format.

Tavus documents no signature for conversation callbacks; Palaver adds one so
receivers can verify with the existing Standard Webhooks libraries. The signed
content is `<webhook-id>.<webhook-timestamp>.<body>`, the key is the base64
part of the account's `whsec_` secret, the signature `v1,<base64 HMAC-SHA256>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    """Decoded once per secret: a worker signs every webhook of an account with the same one."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = _key(secret)
    content = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
