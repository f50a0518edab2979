"""What a deployment's limits are checked against: one usage object per deployment.

    {"day": "2026-05-01", "today": 3, "total": 17,
     "visitors": {"v3f…": 2},                    # today's starts per visitor (kept only under a per-user limit)
     "active": {"c1a2…": 1777600000.5}}          # conversations that may still be running -> when counted

A visitor's start is admitted by one compare-and-swap of this object (the
service's read-modify-write): the limits are checked and the start counted in
the same write, so concurrent clicks cannot overshoot a limit, on one process
or many. The conversation is counted under the id it is then created with;
`active` is pruned of conversations that ended (and of ids whose conversation
never appeared within `RESERVATION_TTL`, a start whose process died between
counting and creating). Days are UTC days: `today` and `visitors` restart at
00:00 UTC; `total` never does.

Pure functions: the service reads the conversations' statuses and hands them in.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

from palaver.domain.errors import PalaverError

# Seconds a counted conversation may take to be created before its count is given up.
RESERVATION_TTL = 120.0
# Above this many possibly-running conversations, `active` is checked on every start even without
# a concurrent limit, so that it cannot grow without bound.
PRUNE_ABOVE = 100


class LimitReached(PalaverError):
    """A start refused by one of the deployment's limits (`limit` names it); `message` is for the visitor."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def visitor_key(*, cookie: str | None, claimed: str | None, address: str | None) -> str:
    """Who a visitor is, for `daily_call_limit_per_user`: the landing page's first-party cookie, else the
    id an embed keeps in its site's storage, else the client address. Hashed: no address is stored.
    Best effort by nature (a visitor who clears them counts as new); `daily_call_limit` is the hard cap."""
    if cookie:
        source = f"cookie:{cookie}"
    elif claimed:
        source = f"embed:{claimed}"
    else:
        source = f"address:{address or ''}"
    return "v" + hashlib.sha256(source.encode()).hexdigest()[:24]


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def current(usage: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """A copy of `usage` as of `now`: another day's daily counts are reset; `total` and `active` are kept."""
    fresh: dict[str, Any] = {"day": utc_day(now), "today": 0, "total": 0, "visitors": {}, "active": {}}
    if not usage:
        return fresh
    fresh["total"] = int(usage.get("total", 0))
    fresh["active"] = dict(usage.get("active") or {})
    if usage.get("day") == fresh["day"]:
        fresh["today"] = int(usage.get("today", 0))
        fresh["visitors"] = copy.deepcopy(usage.get("visitors") or {})
    return fresh


def counts(usage: dict[str, Any] | None, now: float) -> tuple[int, int]:
    """`(usage_today, usage_total)` as the API shows them."""
    now_usage = current(usage, now)
    return now_usage["today"], now_usage["total"]


def needs_statuses(usage: dict[str, Any] | None, limits: dict[str, Any]) -> bool:
    """Whether admitting a start needs to know which counted conversations are still running."""
    running = len((usage or {}).get("active") or {})
    concurrent = limits.get("concurrent_call_limit")
    return (concurrent is not None and running >= concurrent) or running > PRUNE_ABOVE


def finished(counted_at: float, status: str | None, now: float) -> bool:
    """Whether a counted conversation no longer takes a concurrent slot: it ended, or it never
    appeared (`status` None) within RESERVATION_TTL of being counted."""
    if status is None:
        return now - counted_at > RESERVATION_TTL
    return status != "active"


def admit(
    usage: dict[str, Any] | None,
    limits: dict[str, Any],
    *,
    visitor: str,
    conversation_id: str,
    now: float,
    gone: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The usage with this start counted, or LimitReached. `gone`: counted conversations that finished."""
    new = current(usage, now)
    for conversation_id_gone in gone:
        new["active"].pop(conversation_id_gone, None)
    daily = limits.get("daily_call_limit")
    if daily is not None and new["today"] >= daily:
        raise LimitReached(
            "daily_call_limit",
            f"No more conversations today: the limit of {_calls(daily)} a day has been reached. "
            "Please come back tomorrow (the count restarts at 00:00 UTC).",
        )
    per_user = limits.get("daily_call_limit_per_user")
    if per_user is not None and new["visitors"].get(visitor, 0) >= per_user:
        raise LimitReached(
            "daily_call_limit_per_user",
            f"You have reached the limit of {_calls(per_user)} a day per visitor. Please come back tomorrow.",
        )
    concurrent = limits.get("concurrent_call_limit")
    if concurrent is not None and len(new["active"]) >= concurrent:
        raise LimitReached(
            "concurrent_call_limit",
            f"The limit of {_calls(concurrent)} at once has been reached. Please try again in a few minutes.",
        )
    new["today"] += 1
    new["total"] += 1
    if per_user is not None:
        new["visitors"][visitor] = new["visitors"].get(visitor, 0) + 1
    new["active"][conversation_id] = now
    return new


def release(
    usage: dict[str, Any] | None, *, visitor: str, conversation_id: str, day: str, now: float
) -> dict[str, Any]:
    """Take back a start counted on `day` whose conversation could not be created."""
    new = current(usage, now)
    if new["active"].pop(conversation_id, None) is None:
        return new  # never counted, or already taken back
    new["total"] = max(new["total"] - 1, 0)
    if new["day"] == day:
        new["today"] = max(new["today"] - 1, 0)
        left = new["visitors"].get(visitor, 0) - 1
        if left > 0:
            new["visitors"][visitor] = left
        else:
            new["visitors"].pop(visitor, None)
    return new


def _calls(number: int) -> str:
    return f"{number} conversation" + ("" if number == 1 else "s")
