"""Authentication: the x-api-key header, checked before anything else."""

from __future__ import annotations

import time

import httpx
import pytest

INVALID_TOKEN = {"message": "Invalid access token"}
VALID_CREATE = {"replica_id": "r90bbd427f71", "conversation_name": "auth probe"}
OVERSIZED = b'{"padding": "' + b"x" * (1024 * 1024 + 100) + b'"}'


def _requests(cid: str) -> list[tuple[str, str, dict]]:
    """(method, path, httpx kwargs) covering every /v2 route and the odd cases around them."""
    return [
        ("POST", "/v2/conversations", {"json": VALID_CREATE}),
        ("POST", "/v2/conversations", {"json": {"test_mode": "yes"}}),  # invalid body
        ("POST", "/v2/conversations", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("POST", "/v2/conversations", {"content": OVERSIZED, "headers": {"content-type": "application/json"}}),
        ("GET", "/v2/conversations", {}),
        ("GET", "/v2/conversations?limit=abc&status=bogus", {}),
        ("GET", f"/v2/conversations/{cid}", {}),
        ("GET", f"/v2/conversations/{cid}?verbose=true", {}),
        ("GET", "/v2/conversations/c000000000000000", {}),
        ("GET", "/v2/conversations/abc", {}),
        ("POST", f"/v2/conversations/{cid}/end", {}),
        ("POST", "/v2/conversations/c000000000000000/end", {}),
        ("DELETE", f"/v2/conversations/{cid}", {}),
        ("DELETE", f"/v2/conversations/{cid}?hard=true", {}),
        ("DELETE", "/v2/conversations/c000000000000000", {}),
        # wrong methods
        ("PUT", "/v2/conversations", {"json": {}}),
        ("PATCH", f"/v2/conversations/{cid}", {"json": {}}),
        ("GET", f"/v2/conversations/{cid}/end", {}),
        ("DELETE", "/v2/conversations", {}),
        # unknown /v2 paths
        ("GET", "/v2/no-such-route", {}),
        ("POST", "/v2/no-such-route", {"json": {}}),
        ("GET", "/v2", {}),
        ("GET", "/v2/", {}),
        ("GET", f"/v2/conversations/{cid}/end/extra", {}),
    ]


@pytest.fixture(scope="module")
def existing_conversation(server, api_key) -> str:
    with server.client(api_key) as c:
        r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71", "conversation_name": "auth target"})
        assert r.status_code == 200, r.text
        return r.json()["conversation_id"]


@pytest.fixture(scope="module")
def revoked_key(server) -> str:
    created = server.create_key(name="to-revoke", max_concurrent=5)
    assert _poll_status(server, created.key, 200), "a new key never started working"
    server.revoke_key(created.key_id)
    assert _poll_status(server, created.key, 401), "a revoked key kept working"
    return created.key


def _poll_status(server, key: str, wanted: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{server.base_url}/v2/conversations", headers={"x-api-key": key})
        if r.status_code == wanted:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _assert_invalid_token(r: httpx.Response, label: str) -> None:
    assert r.status_code == 401, f"{label}: {r.status_code} {r.text[:300]}"
    assert r.headers.get("content-type", "").split(";")[0].strip() == "application/json", (
        f"{label}: content-type {r.headers.get('content-type')!r}"
    )
    assert r.json() == INVALID_TOKEN, f"{label}: body {r.text[:300]}"


@pytest.mark.parametrize("credential", ["missing", "empty", "unknown", "unknown-long", "revoked"])
def test_every_v2_route_rejects_bad_credentials_first(server, existing_conversation, revoked_key, credential):
    headers = {
        "missing": {},
        "empty": {"x-api-key": ""},
        "unknown": {"x-api-key": "not-a-real-key"},
        "unknown-long": {"x-api-key": "pk_" + "0" * 60},
        "revoked": {"x-api-key": revoked_key},
    }[credential]
    failures = []
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        for method, path, kwargs in _requests(existing_conversation):
            kw = dict(kwargs)
            kw["headers"] = {**headers, **kw.get("headers", {})}
            r = c.request(method, path, **kw)
            try:
                _assert_invalid_token(r, f"{method} {path}")
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_rejected_requests_have_no_side_effects(server, api_key, existing_conversation):
    """Unauthenticated create/end/delete must not touch anything."""
    with httpx.Client(base_url=server.base_url, timeout=30) as anon, server.client(api_key) as c:
        before = c.get("/v2/conversations", params={"limit": 1}).json()["total_count"]
        anon.post("/v2/conversations", json=VALID_CREATE, headers={"x-api-key": "nope"})
        anon.post(f"/v2/conversations/{existing_conversation}/end", headers={"x-api-key": "nope"})
        anon.delete(f"/v2/conversations/{existing_conversation}", headers={"x-api-key": "nope"})
        assert c.get("/v2/conversations", params={"limit": 1}).json()["total_count"] == before
        r = c.get(f"/v2/conversations/{existing_conversation}")
        assert r.status_code == 200
        assert r.json()["status"] == "active"


@pytest.mark.parametrize("header_name", ["x-api-key", "X-API-KEY", "X-Api-Key", "x-API-key"])
def test_header_name_is_case_insensitive(server, api_key, header_name):
    r = httpx.get(f"{server.base_url}/v2/conversations", headers={header_name: api_key})
    assert r.status_code == 200, r.text


def test_valid_key_in_other_places_is_not_accepted(server, api_key):
    """Only the x-api-key header authenticates (not a bearer token or a query parameter)."""
    r = httpx.get(f"{server.base_url}/v2/conversations", headers={"Authorization": f"Bearer {api_key}"})
    _assert_invalid_token(r, "Authorization: Bearer")
    r = httpx.get(f"{server.base_url}/v2/conversations", params={"x-api-key": api_key})
    _assert_invalid_token(r, "?x-api-key=")


def test_mangled_keys_are_rejected(server, api_key):
    swapped_last = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    for bad in (api_key + "x", api_key[:-1], swapped_last):
        r = httpx.get(f"{server.base_url}/v2/conversations", headers={"x-api-key": bad})
        _assert_invalid_token(r, "mangled key")


def test_health_needs_no_key(server):
    r = httpx.get(f"{server.base_url}/health")
    assert r.status_code == 200
    r = httpx.get(f"{server.base_url}/health", headers={"x-api-key": "garbage"})
    assert r.status_code == 200
