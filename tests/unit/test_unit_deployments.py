"""Deployment rules without a server: origins, merge patch, default names, and the usage accounting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from palaver.domain.deployment_usage import (
    RESERVATION_TTL,
    LimitReached,
    admit,
    counts,
    finished,
    needs_statuses,
    release,
    utc_day,
    visitor_key,
)
from palaver.domain.deployments import default_name, merge_patch, origin_allowed, parse_origin

NOON = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp()
BEFORE_MIDNIGHT = datetime(2026, 5, 1, 23, 59, 59, tzinfo=UTC).timestamp()
NEXT_DAY = datetime(2026, 5, 2, 0, 0, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://Example.com", "https://example.com"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://*.example.com", "https://*.example.com"),
        ("https://example.com/path", None),
        ("https://example.com?q", None),
        ("ftp://example.com", None),
        ("example.com", None),
        ("https://user@example.com", None),
        ("https://example.com:99999", None),
        ("https://exa mple.com", None),
        ("https://*", None),
        ("null", None),
        (5, None),
    ],
)  # fmt: skip
def test_parse_origin(value, origin) -> None:
    assert parse_origin(value) == origin


def test_origin_allowed() -> None:
    allowed = ["https://shop.example.com", "https://*.example.org", "http://localhost:3000"]
    assert origin_allowed("https://shop.example.com", allowed)
    assert origin_allowed("https://SHOP.example.com:443", allowed)
    assert origin_allowed("https://a.b.example.org", allowed)
    assert origin_allowed("http://localhost:3000", allowed)
    assert not origin_allowed("https://example.org", allowed)  # the wildcard is for subdomains only
    assert not origin_allowed("http://a.example.org", allowed)  # another scheme
    assert not origin_allowed("http://localhost:3001", allowed)
    assert not origin_allowed("https://evil-shop.example.com", allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed("https://anything.example", []) and origin_allowed("null", [])


def test_merge_patch_is_rfc_7396() -> None:
    target = {"a": 1, "limits": {"x": 1, "y": 2}, "list": [1, 2]}
    assert merge_patch(target, {"a": None, "limits": {"y": None, "z": 3}, "list": [3]}) == {
        "limits": {"x": 1, "z": 3},
        "list": [3],
    }
    assert target == {"a": 1, "limits": {"x": 1, "y": 2}, "list": [1, 2]}  # not changed in place


def test_default_name() -> None:
    assert default_name("Sam", "embed", []) == "Sam Embed"
    assert default_name("Sam", "embed", ["Sam Embed", "Sam Embed 2"]) == "Sam Embed 3"
    assert default_name("  ", "landing-page", []) == "Untitled Link"
    assert default_name(None, "widget", ["Untitled Widget"]) == "Untitled Widget 2"


def test_visitor_keys_are_hashed_and_prefer_the_cookie() -> None:
    by_cookie = visitor_key(cookie="abc12345", claimed="zzz12345", address="10.0.0.1")
    assert by_cookie == visitor_key(cookie="abc12345", claimed=None, address=None)
    assert visitor_key(cookie=None, claimed="zzz12345", address="10.0.0.1") != by_cookie
    by_address = visitor_key(cookie=None, claimed=None, address="10.0.0.1")
    assert "10.0.0.1" not in by_address and by_address.startswith("v") and by_address.isalnum()


def test_daily_limit_counts_utc_days() -> None:
    limits = {"daily_call_limit": 2}
    usage = admit(None, limits, visitor="v1", conversation_id="c1", now=NOON)
    usage = admit(usage, limits, visitor="v2", conversation_id="c2", now=BEFORE_MIDNIGHT)
    with pytest.raises(LimitReached) as refused:
        admit(usage, limits, visitor="v3", conversation_id="c3", now=BEFORE_MIDNIGHT)
    assert refused.value.limit == "daily_call_limit" and "00:00 UTC" in refused.value.message
    usage = admit(usage, limits, visitor="v3", conversation_id="c3", now=NEXT_DAY)
    assert usage["day"] == "2026-05-02" and usage["today"] == 1 and usage["total"] == 3
    assert counts(usage, NEXT_DAY) == (1, 3)
    assert counts(usage, NEXT_DAY + 86_400) == (0, 3)  # a day without starts shows none
    assert utc_day(BEFORE_MIDNIGHT) == "2026-05-01"


def test_per_visitor_limit_and_visitors_kept_only_under_it() -> None:
    limits = {"daily_call_limit_per_user": 1}
    usage = admit(None, limits, visitor="v1", conversation_id="c1", now=NOON)
    with pytest.raises(LimitReached) as refused:
        admit(usage, limits, visitor="v1", conversation_id="c2", now=NOON)
    assert refused.value.limit == "daily_call_limit_per_user"
    usage = admit(usage, limits, visitor="v2", conversation_id="c2", now=NOON)
    assert usage["visitors"] == {"v1": 1, "v2": 1}
    assert admit(usage, limits, visitor="v1", conversation_id="c3", now=NEXT_DAY)["visitors"] == {"v1": 1}
    assert admit(None, {}, visitor="v1", conversation_id="c1", now=NOON)["visitors"] == {}


def test_concurrent_limit_counts_what_has_not_finished() -> None:
    limits = {"concurrent_call_limit": 2}
    usage = admit(None, limits, visitor="v", conversation_id="c1", now=NOON)
    assert not needs_statuses(usage, limits)
    usage = admit(usage, limits, visitor="v", conversation_id="c2", now=NOON)
    assert needs_statuses(usage, limits)
    with pytest.raises(LimitReached) as refused:
        admit(usage, limits, visitor="v", conversation_id="c3", now=NOON)
    assert refused.value.limit == "concurrent_call_limit"
    usage = admit(usage, limits, visitor="v", conversation_id="c3", now=NOON, gone={"c1"})
    assert set(usage["active"]) == {"c2", "c3"}
    assert needs_statuses({"active": {f"c{i}": NOON for i in range(101)}}, {})  # kept bounded without a limit


def test_finished() -> None:
    assert finished(NOON, "ended", NOON) and not finished(NOON, "active", NOON + 10**6)
    assert not finished(NOON, None, NOON + RESERVATION_TTL)  # still being created
    assert finished(NOON, None, NOON + RESERVATION_TTL + 1)  # never created: its process died


def test_release_takes_a_start_back() -> None:
    limits = {"daily_call_limit_per_user": 5, "concurrent_call_limit": 5}
    usage = admit(None, limits, visitor="v", conversation_id="c1", now=NOON)
    usage = admit(usage, limits, visitor="v", conversation_id="c2", now=NOON)
    back = release(usage, visitor="v", conversation_id="c2", day=utc_day(NOON), now=NOON)
    assert (back["today"], back["total"], back["visitors"], set(back["active"])) == (1, 1, {"v": 1}, {"c1"})
    assert release(back, visitor="v", conversation_id="c2", day=utc_day(NOON), now=NOON) == back  # once only
    late = release(usage, visitor="v", conversation_id="c2", day=utc_day(NOON), now=NEXT_DAY)
    assert (late["today"], late["total"]) == (0, 1)  # the new day's count is not touched
