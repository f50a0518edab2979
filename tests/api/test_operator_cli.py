"""The operator interface: `palaver serve`, `palaver keys ...`, `palaver migrate`."""

from __future__ import annotations

import re
import time

import httpx

LISTEN_URL_RE = re.compile(r"^http://127\.0\.0\.1:(\d+)$")


def _status(base_url: str, key: str) -> int:
    return httpx.get(f"{base_url}/v2/conversations", headers={"x-api-key": key}, timeout=10).status_code


def _poll(base_url: str, key: str, wanted: int, timeout: float) -> float | None:
    """Seconds until the key gives ``wanted`` (None if it never did within ``timeout``)."""
    start = time.monotonic()
    while True:
        if _status(base_url, key) == wanted:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(0.02)


def test_fresh_database_prints_key_once(fresh_server):
    srv = fresh_server(name="shown-once")
    assert LISTEN_URL_RE.match(srv.base_url), srv.base_url
    assert int(LISTEN_URL_RE.match(srv.base_url).group(1)) > 0
    key = srv.shown_once_key
    assert key, f"no 'API key (shown once)' line in stdout: {srv.stdout_lines}"
    lines = [ln.strip() for ln in srv.stdout_lines]
    key_line = next(i for i, ln in enumerate(lines) if ln.startswith("API key (shown once):"))
    listen_line = next(i for i, ln in enumerate(lines) if ln.startswith("Palaver listening on"))
    assert key_line < listen_line
    assert _status(srv.base_url, key) == 200

    code = srv.stop()
    assert not srv.killed_after_sigterm, "server ignored SIGTERM"
    assert code is not None
    srv.start()
    assert srv.shown_once_key is None, "the key was printed again on a second start"
    assert not any("shown once" in ln for ln in srv.stdout_lines)
    assert _status(srv.base_url, key) == 200


def test_keys_create_output_format(server):
    created = server.create_key(name="fmt", max_concurrent=2)
    lines = [ln for ln in created.stdout.splitlines() if ln.strip()]
    assert any(re.match(r"^account_id: a\S+$", ln.strip()) for ln in lines), created.stdout
    assert any(re.match(r"^key_id: k\S+$", ln.strip()) for ln in lines), created.stdout
    assert lines[-1].strip() == created.key
    assert " " not in created.key and len(created.key) >= 20
    assert created.account_id.startswith("a") and created.key_id.startswith("k")


def test_key_created_while_running_works_within_a_second(server):
    created = server.create_key(name="live")
    elapsed = _poll(server.base_url, created.key, 200, timeout=1.5)
    assert elapsed is not None, "a key created with the CLI did not work within 1.5 s"


def test_key_revoked_while_running_stops_within_a_second(server):
    created = server.create_key(name="revoke-me")
    assert _poll(server.base_url, created.key, 200, timeout=5) is not None
    server.revoke_key(created.key_id)
    elapsed = _poll(server.base_url, created.key, 401, timeout=1.5)
    assert elapsed is not None, "a revoked key still worked 1.5 s later"
    r = httpx.get(f"{server.base_url}/v2/conversations", headers={"x-api-key": created.key})
    assert r.json() == {"message": "Invalid access token"}


def test_second_key_on_same_account_sees_same_data(server):
    first = server.create_key(name="acct-1", max_concurrent=1)
    second = server.create_key(name="acct-2", account=first.account_id)
    assert second.account_id == first.account_id
    assert second.key != first.key and second.key_id != first.key_id
    assert _poll(server.base_url, first.key, 200, 5) is not None
    assert _poll(server.base_url, second.key, 200, 5) is not None
    with server.client(first.key) as a, server.client(second.key) as b:
        conv = a.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json()
        cid = conv["conversation_id"]
        assert b.get(f"/v2/conversations/{cid}").json()["conversation_id"] == cid
        assert b.get("/v2/conversations").json()["total_count"] == 1
        # the concurrency limit belongs to the account, whichever key is used
        r = b.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code == 400
        assert r.json() == {"message": "User has reached maximum concurrent conversations"}
        assert b.post(f"/v2/conversations/{cid}/end").status_code == 200
        assert a.get(f"/v2/conversations/{cid}").json()["status"] == "ended"
        # revoking one key leaves the other working
        server.revoke_key(first.key_id)
        assert _poll(server.base_url, first.key, 401, 1.5) is not None
        assert b.get(f"/v2/conversations/{cid}").status_code == 200


def test_keys_list_shows_keys_without_secrets(server):
    created = server.create_key(name="listed-key")
    out = server.cli("keys", "list").stdout
    assert created.key_id in out
    assert created.key not in out, "keys list must not print the secret"


def test_revoke_unknown_key_fails(server):
    proc = server.cli("keys", "revoke", "k000000000000000", check=False)
    assert proc.returncode != 0


def test_migrate_says_what_it_applied_then_is_idempotent(tmp_path, palaver_cli, make_database):
    url = make_database(tmp_path, "migrate").url
    first = palaver_cli("migrate", "--database-url", url).stdout
    assert first.startswith("applied: 0001_initial.sql"), first
    assert palaver_cli("migrate", "--database-url", url).stdout.strip() == "schema is up to date"
    created = palaver_cli("keys", "create", "--database-url", url).stdout.splitlines()
    assert created[-1].strip()


def test_public_url_sets_conversation_url(fresh_server):
    srv = fresh_server(name="public-url", public_url="https://palaver.example.com")
    with srv.client(srv.shown_once_key) as c:
        r = c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"})
        assert r.status_code == 200, r.text
        cid = r.json()["conversation_id"]
        assert r.json()["conversation_url"] == f"https://palaver.example.com/rooms/{cid}"
        assert c.get(f"/v2/conversations/{cid}").json()["conversation_url"] == (
            f"https://palaver.example.com/rooms/{cid}"
        )
        # the room itself is still served by this server under /rooms/<id>
        assert httpx.get(f"{srv.base_url}/rooms/{cid}").status_code == 200
