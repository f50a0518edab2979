"""PostgreSQL killed with SIGKILL right after Palaver acknowledged ends: after its crash recovery,
every acknowledged end (and create) is there, exactly once.

Palaver answers an end only after PostgreSQL has committed it, and a commit with
`synchronous_commit = on` (PostgreSQL's default, which a deployment keeps) has
written its WAL before PostgreSQL answers. SIGKILL takes PostgreSQL's own memory
(its WAL buffers, its shared buffers) but not the kernel's page cache, so this
cluster keeps `fsync` off like the other test clusters: what is lost here would
be what Palaver acknowledged too early, not what a power cut takes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
from backends import PostgresBackend
from servers import PalaverServer, children, create_key, run_cli, wait_until

from palaver.tools.pgcluster import PostgresCluster

CONVERSATIONS = 200


def kill_postgres(cluster: PostgresCluster) -> None:
    """SIGKILL to the postmaster and every process it started, the way a crash takes them."""
    assert cluster.process is not None
    postmaster = cluster.process.pid
    for pid in children(postmaster):
        with contextlib.suppress(ProcessLookupError):  # a worker that has just exited by itself
            os.kill(pid, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    cluster.process.wait(10)


def test_acknowledged_ends_survive_postgresql_killed(tmp_path) -> None:
    # In a folder of its own (not pytest's tmp_path, which the cluster's system user cannot enter).
    cluster = PostgresCluster(settings={"synchronous_commit": "on"}).start()
    srv = None
    try:
        database = PostgresBackend(cluster, prefix="sigkill")
        run_cli("migrate", "--database-url", database.url)
        key = create_key(database.url, name="sigkill").key
        srv = PalaverServer(tmp_path, database=database, extra_args=("--no-delivery",)).start()
        base = srv.base_url
        headers = {"x-api-key": key}

        def create(_: int) -> str:
            r = httpx.post(f"{base}/v2/conversations", headers=headers, json={"replica_id": "r90bbd427f71"}, timeout=10)
            assert r.status_code == 200, r.text
            return r.json()["conversation_id"]

        def end(cid: str) -> str:
            r = httpx.post(f"{base}/v2/conversations/{cid}/end", headers=headers, timeout=10)
            assert r.status_code == 200, r.text
            return cid

        with ThreadPoolExecutor(16) as pool:
            created = list(pool.map(create, range(CONVERSATIONS)))
            ended = set(pool.map(end, created[: CONVERSATIONS // 2]))  # concurrent: several group commits
        kill_postgres(cluster)  # right after the last acknowledgement

        cluster.start()  # crash recovery replays the WAL
        assert wait_until(lambda: httpx.get(f"{base}/health", timeout=10).status_code == 200, timeout=30)

        def view(cid: str) -> dict:
            for _ in range(50):  # the pool replaces connections the crash broke: a 500 or two first
                r = httpx.get(f"{base}/v2/conversations/{cid}", headers=headers, params={"verbose": "true"}, timeout=10)
                if r.status_code == 200:
                    return r.json()
                assert r.status_code == 500, r.text
            raise AssertionError(f"{cid} never read back")

        for cid in created:
            got = view(cid)
            shutdowns = [e for e in got["events"] if e["event_type"] == "system.shutdown"]
            if cid in ended:
                assert got["status"] == "ended", got
                assert len(shutdowns) == 1, got
                assert shutdowns[0]["properties"]["shutdown_reason"] == "end_conversation_endpoint_hit"
            else:
                assert got["status"] == "active" and shutdowns == [], got
        listed = httpx.get(
            f"{base}/v2/conversations", headers=headers, params={"status": "ended", "limit": 1}, timeout=10
        ).json()
        assert listed["total_count"] == len(ended)
    finally:
        if srv is not None:
            srv.stop()
        cluster.stop()
