#!/usr/bin/env python3
"""Rooms held open at once: round trips, memory per room, end-to-close (issue 13's benchmark).

For each configuration (SQLite with one process; PostgreSQL with two processes
on a cluster started here) it:

1. starts `palaver serve` on a new database and creates N conversations with the
   stock echo persona (`pipecat0`), through the API;
2. opens one scripted participant per room (one asyncio process, `websockets`),
   all at once, and reads the server's resident memory before and after:
   the difference divided by N is the memory one open room costs;
3. for `--duration` seconds, every participant sends one `conversation.echo`
   per second (spread evenly) and waits for the replica's `conversation.utterance`
   with that text: the round trip is from send to receipt. p50/p99 for each
   5-second window and the whole run;
4. ends `--end-sample` rooms through the API one after another and times, for
   each, from the end request's 200 to every socket of that room closed.

The load generator shares the machine's 2 cores with Palaver (and PostgreSQL),
as in every benchmark here; its CPU time is printed so the figures can be read
with that in mind. Target (issue 13): 1,000 rooms, p99 under 100 ms at one
message per room per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

ECHO_PERSONA = "pipecat0"
REPLICA = "r90bbd427f71"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the server's whole tree)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cli(python: str, *args: str) -> str:
    return subprocess.run([python, "-m", "palaver", *args], check=True, capture_output=True, text=True).stdout


class Server:
    def __init__(self, python: str, database_url: str, workdir: Path, extra: list[str]) -> None:
        self.python, self.database_url, self.workdir, self.extra = python, database_url, workdir, extra
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        cmd = [
            self.python,
            "-m",
            "palaver",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database-url",
            self.database_url,
            "--no-delivery",
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=open(self.workdir / "server.log", "w"), text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:
            if line.startswith("Palaver listening on "):
                self.url = line.split()[-1].rstrip("/")
                return
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"server did not start: {(self.workdir / 'server.log').read_text()[-2000:]}")

    def log_tail(self, chars: int = 3000) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def participant(url: str, ready: asyncio.Event) -> Any:
    ws = await websockets.connect(
        url.replace("http://", "ws://") + "/ws?name=bench", max_size=None, open_timeout=60, ping_interval=None
    )
    while True:  # the welcome, then the replica's arrival
        message = json.loads(await ws.recv())
        if message.get("event_type") == "system.replica_joined":
            break
    ready.set()
    return ws


async def exchange(
    ws: Any, cid: str, start_at: float, duration: float, rtts: list[tuple[float, float]], errors: list[str]
) -> None:
    """One message per second from `start_at`, each waiting for its utterance."""
    n = 0
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    end = start_at + duration
    while time.monotonic() < end:
        n += 1
        text = f"{cid} message {n}"
        sent = time.monotonic()
        await ws.send(
            json.dumps(
                {
                    "message_type": "conversation",
                    "event_type": "conversation.echo",
                    "conversation_id": cid,
                    "properties": {"text": text},
                }
            )
        )
        try:
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if m.get("event_type") == "conversation.utterance" and m["properties"].get("speech") == text:
                    break
        except (TimeoutError, websockets.ConnectionClosed) as exc:
            errors.append(f"{cid}: {type(exc).__name__}")
            return
        got = time.monotonic()
        rtts.append((got, (got - sent) * 1000))
        await asyncio.sleep(max(0.0, sent + 1.0 - time.monotonic()))


async def wait_closed(ws: Any) -> float:
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed:
        return time.monotonic()


async def run_config(label: str, server: Server, key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"x-api-key": key}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as client:
        sem = asyncio.Semaphore(32)

        async def create() -> dict[str, Any]:
            async with sem:
                r = await client.post(
                    "/v2/conversations",
                    json={
                        "persona_id": ECHO_PERSONA,
                        "replica_id": REPLICA,
                        "properties": {"participant_absent_timeout": 3600, "participant_left_timeout": 3600},
                    },
                )
                r.raise_for_status()
                return r.json()

        t0 = time.monotonic()
        convs = await asyncio.gather(*(create() for _ in range(args.rooms)))
        log(f"  created {len(convs)} conversations in {time.monotonic() - t0:.1f} s")
        assert server.proc is not None
        await asyncio.sleep(1.0)
        rss_before = rss_kib(server.proc.pid)
        t0 = time.monotonic()
        join_sem = asyncio.Semaphore(64)

        async def join(c: dict[str, Any]) -> Any:
            async with join_sem:
                return await participant(c["conversation_url"], asyncio.Event())

        sockets = await asyncio.gather(*(join(c) for c in convs))
        join_s = time.monotonic() - t0
        await asyncio.sleep(2.0)
        rss_after = rss_kib(server.proc.pid)
        per_room = (rss_after - rss_before) / args.rooms
        log(
            f"  {len(sockets)} rooms joined in {join_s:.1f} s; server memory {rss_before / 1024:.0f} -> "
            f"{rss_after / 1024:.0f} MiB ({per_room:.1f} KiB per open room)"
        )

        rtts: list[tuple[float, float]] = []
        errors: list[str] = []
        cpu0 = time.process_time()
        start = time.monotonic() + 1.0
        await asyncio.gather(
            *(
                exchange(ws, c["conversation_id"], start + i / args.rooms, args.duration, rtts, errors)
                for i, (ws, c) in enumerate(zip(sockets, convs, strict=True))
            )
        )
        load_cpu = time.process_time() - cpu0
        windows = []
        for w in range(0, args.duration, 5):
            values = [v for at, v in rtts if start + w <= at < start + w + 5]
            windows.append({"from_s": w, "n": len(values), "p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99)})
        whole = [v for _, v in rtts]
        for w in windows:
            log(
                f"    {w['from_s']:>3}-{w['from_s'] + 5:<3}s  n={w['n']:>6}  p50 {w['p50_ms']:7.2f} ms  "
                f"p99 {w['p99_ms']:7.2f} ms"
            )
        log(
            f"  whole: {len(whole)} round trips ({len(whole) / args.duration:.0f}/s), p50 {pct(whole, 0.5):.2f} ms, "
            f"p99 {pct(whole, 0.99):.2f} ms, errors {len(errors)}; load generator CPU {load_cpu:.1f} s"
        )

        closes: list[float] = []
        sample = random.Random(7).sample(range(len(convs)), min(args.end_sample, len(convs)))
        for i in sample:
            waiter = asyncio.create_task(wait_closed(sockets[i]))
            r = await client.post(f"/v2/conversations/{convs[i]['conversation_id']}/end")
            acknowledged = time.monotonic()
            r.raise_for_status()
            closed = await asyncio.wait_for(waiter, timeout=10)
            closes.append((closed - acknowledged) * 1000)
        log(
            f"  end-to-close over {len(closes)} rooms: median {statistics.median(closes):.1f} ms, "
            f"max {max(closes):.1f} ms"
        )
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "label": label,
        "rooms": args.rooms,
        "join_s": join_s,
        "kib_per_room": per_room,
        "rss_mib_before": rss_before / 1024,
        "rss_mib_after": rss_after / 1024,
        "round_trips": len(whole),
        "p50_ms": pct(whole, 0.5),
        "p99_ms": pct(whole, 0.99),
        "worst_window_p99_ms": max(w["p99_ms"] for w in windows if w["n"]),
        "errors": len(errors),
        "windows": windows,
        "end_to_close_median_ms": statistics.median(closes),
        "end_to_close_max_ms": max(closes),
        "load_generator_cpu_s": load_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--duration", type=int, default=30, help="seconds of messages")
    p.add_argument("--end-sample", type=int, default=50, help="rooms ended one by one for end-to-close")
    p.add_argument("--only", choices=["sqlite", "pg2"], action="append")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    python = sys.executable
    results = []
    with tempfile.TemporaryDirectory(prefix="palaver-rooms-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # as root, the PostgreSQL cluster runs as a user of its own that must reach it
        if not args.only or "sqlite" in args.only:
            url = f"sqlite:///{work / 'rooms.db'}"
            cli(python, "migrate", "--database-url", url)
            key = cli(python, "keys", "create", "--database-url", url, "--max-concurrent", "1000000").split()[-1]
            server = Server(python, url, work, [])
            server.start()
            log(f"SQLite, 1 process ({server.url})")
            try:
                results.append(asyncio.run(run_config("SQLite, 1 process", server, key, args)))
            except Exception:
                log(f"server log:\n{server.log_tail()}")
                raise
            finally:
                server.stop()
        if not args.only or "pg2" in args.only:
            from palaver.tools.pgcluster import PostgresCluster

            with PostgresCluster(work / "pg") as cluster:
                url = cluster.create_database("rooms")
                cli(python, "migrate", "--database-url", url)
                key = cli(python, "keys", "create", "--database-url", url, "--max-concurrent", "1000000").split()[-1]
                server = Server(python, url, work, ["--workers", "2"])
                server.start()
                log(f"PostgreSQL, 2 processes ({server.url})")
                try:
                    results.append(asyncio.run(run_config("PostgreSQL, 2 processes", server, key, args)))
                except Exception:
                    log(f"server log:\n{server.log_tail()}")
                    raise
                finally:
                    server.stop()
    log()
    log(
        f"{'configuration':<26}{'rooms':>6}{'KiB/room':>10}{'p50 ms':>9}{'p99 ms':>9}{'worst 5s p99':>14}"
        f"{'errors':>8}{'end->close med/max ms':>24}"
    )
    for r in results:
        log(
            f"{r['label']:<26}{r['rooms']:>6}{r['kib_per_room']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['worst_window_p99_ms']:>14.2f}{r['errors']:>8}"
            f"{r['end_to_close_median_ms']:>13.1f} / {r['end_to_close_max_ms']:.1f}"
        )
    log(f"machine: {os.cpu_count()} cores; target: p99 < 100 ms at 1 message per room per second")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["p99_ms"] < 100 and not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
