#!/usr/bin/env python3
"""Two versions of Palaver's end path, A and B, alternating on copies of one SQLite database.

Why: on the shared two-core machine the sustained benchmark (sustained.py) drifts more from one
run to the next than most end-path changes move (docs/performance.md), and each of its runs
creates its own million conversations through the API (10+ minutes). Here both versions end
conversations of the same stored million, in alternating order (AB, BA, AB, ...), so drift falls
on both alike, and the database is filled in seconds.

    python benchmarks/ab_ends.py --a /tmp/old/src --b src

`--a` / `--b` are source folders put first on PYTHONPATH (e.g. `src` of a `git worktree` of the
commit before a change). The database: A's migrations, one conversation created through A's API
(the sustained benchmark's body), copied by SQL into `--conversations` rows with random ids, in
creation order. Each version serves its own copy, so B's migrations run on its copy at its first
start, before any load. Each run: `--duration` seconds of ends at `--connections` connections
(sustained.py's load, ids not ended before), then: ends/s, CPU µs per end of the server's process
tree (its delivery process included), p50 and p99; at the end the medians per version.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from run import Server, log
from sustained import CREATE_BODY, deal, end_load, figures

from palaver.domain.ids import new_conversation_id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="source folder of version A (first on PYTHONPATH)")
    p.add_argument("--b", type=Path, required=True, help="source folder of version B")
    p.add_argument("--conversations", type=int, default=1_200_000, help="stored before the ends")
    p.add_argument("--duration", type=int, default=25, help="seconds of ends per run")
    p.add_argument("--rounds", type=int, default=3, help="runs per version")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--workdir", type=Path, default=None)
    return p.parse_args(argv)


def palaver(*args: str) -> list[str]:
    return [sys.executable, "-m", "palaver", *args]


def env_for(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source.resolve())}


def fill(args: argparse.Namespace, db: Path, workdir: Path) -> tuple[str, list[str]]:
    """The shared database: A's schema, a key, and `--conversations` active conversations."""
    url = f"sqlite:///{db}"
    out = subprocess.run(palaver("keys", "create", "--database-url", url, "--name", "ab"),
                         env=env_for(args.a), capture_output=True, text=True, check=True)
    key = out.stdout.split()[-1]
    server = Server("A", palaver("serve", "--host", "127.0.0.1", "--port", "0", "--database-url", url),
                    workdir / "fill.log", env=env_for(args.a))
    try:
        answer = httpx.post(server.start() + "/v2/conversations", content=CREATE_BODY,
                            headers={"x-api-key": key, "content-type": "application/json"})
        answer.raise_for_status()
    finally:
        server.stop()
    ids = [new_conversation_id() for _ in range(args.conversations)]
    con = sqlite3.connect(db, isolation_level=None)
    try:
        columns = [r[1] for r in con.execute("PRAGMA table_info(conversations)")
                   if r[1] not in ("seq", "conversation_id")]
        listed = ", ".join(columns)
        con.execute("BEGIN")
        con.execute("CREATE TEMP TABLE new_ids (id TEXT NOT NULL)")
        con.executemany("INSERT INTO new_ids VALUES (?)", ((i,) for i in ids))
        con.execute(f"INSERT INTO conversations (conversation_id, {listed}) SELECT n.id, {listed} "
                    "FROM new_ids n, (SELECT * FROM conversations LIMIT 1) ORDER BY n.rowid")
        if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'conversation_texts'").fetchone():
            # Since migration 0010 the prompt and request live there: each copy gets the template's.
            con.execute("INSERT INTO conversation_texts (conversation_seq, system_prompt, request) "
                        "SELECT c.seq, t.system_prompt, t.request FROM conversations c, "
                        "(SELECT * FROM conversation_texts LIMIT 1) t WHERE c.seq <> t.conversation_seq")
        con.execute("UPDATE accounts SET active_conversations = active_conversations + ?", (len(ids),))
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return key, ids


def one_run(args: argparse.Namespace, version: str, db: Path, key: str, ids: list[str],
            workdir: Path) -> dict[str, Any]:
    source = args.a if version == "A" else args.b
    url = f"sqlite:///{db}"
    server = Server(version, palaver("serve", "--host", "127.0.0.1", "--port", "0", "--database-url", url),
                    workdir / f"serve-{version}.log", env=env_for(source))
    server.start()
    problems: list[str] = []
    try:
        deal(ids, workdir / "ids", args.connections)
        run = end_load(args, workdir, version, server, key, workdir / "ids", args.duration, False, problems)
    finally:
        server.stop()
    run["label"] = version
    fig = figures(args.duration, [run])
    if problems:
        raise SystemExit("invalid run: " + "; ".join(problems))
    cpu = fig["cpu_us_per_request"]
    return {"ends_per_s": fig["whole"]["rps"], "cpu_us": cpu["server"] + cpu.get("delivery", 0.0),
            "p50_ms": fig["whole"]["p50_ms"], "p99_ms": fig["whole"]["p99_ms"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="palaver-ab-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = workdir / "base.db"
    key, ids = fill(args, base, workdir)
    log(f"stored {len(ids)} conversations in {time.monotonic() - started:.0f} s ({workdir})")
    for version in "AB":
        shutil.copy(base, workdir / f"{version}.db")
    random.Random(1).shuffle(ids)
    slices = [ids[i :: 2 * args.rounds] for i in range(2 * args.rounds)]
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for round_ in range(args.rounds):
        for version in "AB" if round_ % 2 == 0 else "BA":
            folder = workdir / f"run{round_}{version}"
            folder.mkdir()
            fig = one_run(args, version, workdir / f"{version}.db", key, slices.pop(), folder)
            results[version].append(fig)
            log(f"round {round_} {version}: {fig['ends_per_s']:8.0f} ends/s  {fig['cpu_us']:6.1f} us/end  "
                f"p50 {fig['p50_ms']:6.2f} ms  p99 {fig['p99_ms']:6.2f} ms")
    log("\nmedians over the rounds   ends/s   CPU us/end   p50 ms   p99 ms")
    for version in "AB":
        rows = results[version]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        log(f"{version} ({getattr(args, version.lower())})".ljust(25)
            + f"{med['ends_per_s']:8.0f}   {med['cpu_us']:10.1f}   {med['p50_ms']:6.2f}   {med['p99_ms']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
