"""`palaver serve --workers N` and `GET /health` against a database that goes away and comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from backends import PostgresBackend
from servers import PalaverServer, children, create_key, revoke_key, run_cli, wait_until

from palaver.tools.pgcluster import PostgresCluster


def servers_of(pid: int) -> set[int]:
    """The forked API processes (the delivery worker is `palaver deliver`)."""
    return {child for child, cmd in children(pid).items() if b"deliver" not in cmd}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_share_the_port_and_a_dead_one_is_replaced(pg_cluster, tmp_path) -> None:
    database = PostgresBackend(pg_cluster, prefix="workers")
    srv = PalaverServer(tmp_path, database=database, name="workers", extra_args=("--workers", "2"))
    srv.start()
    try:
        assert srv.proc is not None
        first = servers_of(srv.proc.pid)
        assert len(first) == 2
        key = srv.shown_once_key
        assert key
        with srv.client(key) as c:
            cids = [c.post("/v2/conversations", json={"replica_id": "r90bbd427f71"}).json()["conversation_id"]
                    for _ in range(20)]
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(servers_of(srv.proc.pid)) == 2 and victim not in servers_of(srv.proc.pid),
                          timeout=15), "the dead server process was not replaced"
        # New connections (a fresh client each time) land on either process; all answer.
        for cid in cids:
            with srv.client(key) as c:
                assert c.post(f"/v2/conversations/{cid}/end").status_code == 200
                assert c.get(f"/v2/conversations/{cid}").json()["status"] == "ended"
        api_processes = servers_of(srv.proc.pid)
        assert srv.stop() == 0
        assert wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in api_processes), timeout=10)
    finally:
        srv.stop()
        database.drop()


def test_workers_need_postgresql(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "palaver", "serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "--workers needs PostgreSQL" in done.stderr


def test_health_reports_whether_the_database_answers(tmp_path) -> None:
    """A cluster of its own, stopped and started again under a running server."""
    cluster = PostgresCluster().start()
    try:
        database = PostgresBackend(cluster, prefix="health")
        run_cli("migrate", "--database-url", database.url)
        key = create_key(database.url, name="health").key
        srv = PalaverServer(tmp_path, database=database, extra_args=("--no-delivery",)).start()
        base = srv.base_url
        try:
            assert httpx.get(f"{base}/health").json() == {"status": "ok", "database": "ok"}
            cluster.stop(remove=False)
            assert wait_until(lambda: httpx.get(f"{base}/health", timeout=10).status_code == 503, timeout=10)
            assert httpx.get(f"{base}/health", timeout=10).json() == {"status": "error", "database": "unreachable"}
            cluster.start()
            assert wait_until(lambda: httpx.get(f"{base}/health", timeout=10).status_code == 200, timeout=15)
            # The API recovers too: its pool replaces the connections the restart broke.
            created = None
            for _ in range(20):
                r = httpx.post(f"{base}/v2/conversations", headers={"x-api-key": key},
                               json={"replica_id": "r90bbd427f71"}, timeout=10)
                if r.status_code == 200:
                    created = r.json()["conversation_id"]
                    break
                assert r.status_code == 500 and r.json() == {"error": "Internal server error"}, r.text
                time.sleep(0.2)
            assert created, "the API never recovered after the database came back"
            r = httpx.post(f"{base}/v2/conversations/{created}/end", headers={"x-api-key": key}, timeout=10)
            assert r.status_code == 200
        finally:
            srv.stop()
    finally:
        cluster.stop()


def test_a_key_created_or_revoked_anywhere_works_everywhere_within_a_second(pg_cluster, tmp_path) -> None:
    database = PostgresBackend(pg_cluster, prefix="keys")
    run_cli("migrate", "--database-url", database.url)
    nodes = [PalaverServer(tmp_path / f"n{i}", database=database, name=f"n{i}", extra_args=("--no-delivery",))
             for i in range(3)]
    try:
        for node in nodes:
            node.start()
        for node in nodes:  # every cache holds "unknown" for the key's lookup first
            assert httpx.get(f"{node.base_url}/v2/conversations", headers={"x-api-key": "0" * 48}).status_code == 401
        created = create_key(database.url, name="anywhere")
        made = time.monotonic()
        for node in nodes:
            assert wait_until(lambda n=node: httpx.get(f"{n.base_url}/v2/conversations",
                                                       headers={"x-api-key": created.key}).status_code == 200, 2)
        assert time.monotonic() - made < 1.5  # within a second, plus the requests' own time
        revoke_key(database.url, created.key_id)
        revoked = time.monotonic()
        for node in nodes:
            assert wait_until(lambda n=node: httpx.get(f"{n.base_url}/v2/conversations",
                                                       headers={"x-api-key": created.key}).status_code == 401, 2)
        assert time.monotonic() - revoked < 1.5
    finally:
        for node in nodes:
            node.stop()
        database.drop()
