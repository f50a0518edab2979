"""Meeting tokens for `require_auth` rooms: HS256 JWTs, checked statelessly.

Tavus returns a JWT (`eyJ...`) that the participant hands to the room. Palaver
signs it with a server secret that every process reads from the database
(`RoomStore.shared_secret`), so whichever process a participant reaches can
check a token another process minted, without a lookup. The token names its
room (`r`) and expires `participant_absent_timeout` seconds after creation, as
Tavus documents; `o` is Daily's "owner" flag, always false here.
"""

from __future__ import annotations

import secrets

import jwt

ALGORITHM = "HS256"


def meeting_token(secret: bytes, conversation_id: str, issued_at: float, expires_at: float) -> str:
    claims = {
        "r": conversation_id,
        "iat": int(issued_at),
        "exp": int(expires_at),
        "o": False,
        "jti": secrets.token_urlsafe(12),  # two tokens for one room are never equal
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"typ": "JWT"})


def token_admits(secret: bytes, token: str, conversation_id: str, now: float) -> bool:
    """True if `token` was signed with `secret` for this room and has not expired at `now`."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "r"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return False
    exp = claims.get("exp")
    return claims.get("r") == conversation_id and isinstance(exp, int) and now < exp
