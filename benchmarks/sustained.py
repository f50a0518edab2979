#!/usr/bin/env python3
"""Sustained end load: Palaver's end endpoint for a minute over a large database.

``run.py`` ends 20,000 conversations per round, about a second of load on a
small database; a tail that grows with load duration and database size does
not show there.  This mode:

1. starts ``palaver serve`` (``--palaver-cmd``, ``--serve-arg``) on a new
   SQLite file, or on ``--database-url``, with a new account;
2. creates ``--conversations`` conversations through the API with wrk
   (``create.lua``, which saves the ids it is given) and says how long that
   took.  Their timers are set to a day: with the defaults, the conversations
   created first would end by themselves (``participant_absent_timeout``,
   300 s) while the rest are still being created;
3. puts ``--duration`` seconds of ends on the minimal Starlette app
   (``baseline_starlette.py``, fake ids), half of them before Palaver's and
   half after, so that a machine whose speed drifts over the run does not
   favour either server;
4. ends conversations on Palaver for ``--duration`` seconds at
   ``--connections`` connections, each connection ending its own share of the
   ids once each (``end_for.lua``: one wrk thread per connection, logging
   every request's latency);
5. checks through the API that exactly the acknowledged ends were made;
6. prints machine information, ends/s, p50 and p99 for every ``--window``
   seconds and for the whole run, for both servers, the ratio and the
   targets; ``--json OUT`` writes the same figures as JSON.

Percentiles come from the per-request latencies the wrk threads log (nearest
rank), windowed by the time each request was sent; there is no
coordinated-omission correction (wrk's own histogram adds one).

Exit status: 0 = valid run, targets met; 1 = valid run, a target missed;
2 = invalid run.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from proctree import children_map, tree_cpu
from run import (  # the pieces run.py's modes share (same directory)
    CREATE_LUA,
    STARLETTE_APP,
    WRK_DIR,
    BenchError,
    Server,
    Wrk,
    busy_share,
    delivery_children,
    describe_rc,
    fake_ids,
    log,
    machine_info,
    machine_ticks,
    pct,
    run_guarded,
    total_count,
)

END_FOR_LUA = WRK_DIR / "end_for.lua"
TARGET_RATIO = 0.7  # Palaver ends/s / minimal Starlette ends/s, whole run (issue 11, SQLite)
TARGET_P99_MS = 15.0  # in every window (issue 11, SQLite; PostgreSQL: 0.3 and 25 ms)
FAKE_IDS = 20_000  # per connection for the baseline, which stores nothing (cycled)
SILENCE_MS = 50  # a stretch this long with no answer to any connection counts as a silence (figures)
DAY = 86_400
CREATE_BODY = json.dumps({"replica_id": "r90bbd427f71", "persona_id": "pcb7a34da5fe", "conversation_name": "bench",
                          "properties": {"max_call_duration": DAY, "participant_absent_timeout": DAY}},
                         separators=(",", ":"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=1_200_000,
                   help="conversations created before the ends, and the ids the ends use: must outlast "
                        "--duration at Palaver's end rate (default 1,200,000)")
    p.add_argument("--duration", type=int, default=60, help="seconds of end load per server (default 60)")
    p.add_argument("--window", type=int, default=5, help="seconds per reported window (default 5)")
    p.add_argument("--connections", type=int, default=64,
                   help="connections, each with a wrk thread of its own for the ends (default 64)")
    p.add_argument("--create-threads", type=int, default=2, help="wrk threads for the creates (default 2)")
    p.add_argument("--palaver-cmd", type=shlex.split, default=[sys.executable, "-m", "palaver"],
                   help="command that runs the palaver CLI, shell-quoted (default: this Python -m palaver)")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `palaver serve`, repeatable (e.g. --serve-arg=--workers=2)")
    p.add_argument("--database-url", default=None,
                   help="Palaver's database (default: a new SQLite file in the workdir); the run makes a new "
                        "account there and counts only its conversations")
    p.add_argument("--postgres", type=Path, default=None, metavar="DIR",
                   help="run Palaver on a durable PostgreSQL cluster in DIR (made on first use, kept and reused "
                        "by later runs), started by this script so that its CPU is counted too")
    p.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                   help="a postgresql.conf setting for the --postgres cluster, over pgcluster's durable ones "
                        "(repeatable)")
    p.add_argument("--pg-checkpoint", action="store_true",
                   help="run a CHECKPOINT on the --postgres cluster just before Palaver's ends: the run then "
                        "starts in the full-page writes that follow every checkpoint (the worst part of the cycle)")
    p.add_argument("--target-ratio", type=float, default=TARGET_RATIO,
                   help=f"least Palaver / Starlette ends/s that passes (default {TARGET_RATIO})")
    p.add_argument("--target-p99-ms", type=float, default=TARGET_P99_MS,
                   help=f"largest p99 in any window that passes (default {TARGET_P99_MS:.0f})")
    p.add_argument("--skip-starlette", action="store_true", help="no baseline, no ratio")
    p.add_argument("--baseline-python", default=sys.executable,
                   help="Python that runs baseline_starlette.py (default: this Python)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the database, ids, latency logs and server logs here (default: a temporary "
                        "directory, removed unless the run is invalid)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the figures here")
    p.add_argument("--wrk", default="wrk", help="wrk binary (default: wrk on PATH)")
    p.add_argument("--start-timeout", type=float, default=60.0, help="seconds for a server to come up")
    args = p.parse_args(argv)
    if args.duration % (2 * args.window):
        p.error("--duration must be a multiple of twice --window (the baseline runs half before, half after)")
    if any("=" not in item for item in args.pg_setting):
        p.error("--pg-setting takes NAME=VALUE")
    if args.postgres and args.database_url:
        p.error("--postgres starts its own database: give it or --database-url, not both")
    if args.conversations < args.connections:
        p.error("need at least one conversation per connection")
    return args


def start_postgres(folder: Path, extra: list[str] | None = None) -> Any:
    """A durable cluster (fsync and synchronous commit on, as a deployment would run it) with a database
    `palaver`; its postmaster is this script's child, so its CPU and its backends' can be counted."""
    from palaver.tools.pgcluster import PostgresCluster

    settings = dict(item.split("=", 1) for item in extra or [])
    cluster = PostgresCluster(folder.resolve(), durable=True, settings=settings).start()
    if not cluster.psql("SELECT 1 FROM pg_database WHERE datname = 'palaver'").strip():
        cluster.create_database("palaver")
    log(f"== PostgreSQL in {folder} (port {cluster.port}, durable; settings {cluster.settings})")
    return cluster


def start_palaver(args: argparse.Namespace, workdir: Path) -> tuple[Server, str, str]:
    """`palaver keys create` for a new account, then `palaver serve`; returns (server, url, key)."""
    db_url = args.database_url or f"sqlite:///{workdir / 'palaver-sustained.db'}"
    log(f"== Palaver ({' '.join(args.palaver_cmd)}), database {db_url.split('@')[-1]}")
    keys_cmd = [*args.palaver_cmd, "keys", "create", "--database-url", db_url, "--name", "sustained"]
    cp = subprocess.run(keys_cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    lines = [ln.strip() for ln in cp.stdout.splitlines() if ln.strip()]
    if cp.returncode != 0 or not lines:
        raise BenchError(f"`palaver keys create` failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    serve = [*args.palaver_cmd, "serve", "--host", "127.0.0.1", "--port", "0", "--database-url", db_url,
             *args.serve_arg]
    server = Server("palaver", serve, workdir / "palaver-server.log", start_timeout=args.start_timeout)
    url = server.start()
    log(f"   serving at {url} (serve args: {' '.join(args.serve_arg) or 'none'})")
    return server, url, lines[-1]


def create(args: argparse.Namespace, workdir: Path, url: str, key: str, problems: list[str]) -> tuple[list[str], dict]:
    """--conversations creates through the API; the ids, and how long it took."""
    n = args.conversations
    log(f"== Creating {n} conversations ({args.create_threads} wrk threads, {args.connections} connections)")
    saved = workdir / "created-ids"
    wrk = Wrk(args.wrk, args.create_threads, args.connections, 7200, workdir)
    r = wrk.run("palaver create", CREATE_LUA, url, key, str(n), n,
                env={"PALAVER_BENCH_IDS_OUT": str(saved), "PALAVER_BENCH_CREATE_BODY": CREATE_BODY})
    problems.extend(f"create: {p}" for p in r["problems"])
    ids: list[str] = []
    for tid in range(r["threads"]):
        ids += Path(f"{saved}.{tid}").read_text().split()
    if len(ids) != n or len(set(ids)) != n:
        raise BenchError(f"create: {len(ids)} ids saved ({len(set(ids))} distinct), expected {n}")
    log(f"   {n} created in {r['elapsed_s']:.0f} s ({r['rps']:.0f}/s)")
    return ids, {"count": n, "seconds": r["elapsed_s"], "rps": r["rps"], "wrk_command": wrk.command_lines}


def deal(ids: list[str], prefix: Path, connections: int) -> None:
    """Ids dealt round-robin, one file per connection (each wrk thread reads only its own)."""
    for tid in range(connections):
        Path(f"{prefix}.{tid}").write_text("".join(i + "\n" for i in ids[tid::connections]))


def children_cpu() -> float:
    """CPU seconds used by this process's children that have exited and been waited for (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuSampler:
    """The CPU used so far by the server, PostgreSQL and wrk, every half second while a load runs.

    For each window's CPU per request. wrk does the same work for every request,
    so its CPU per request is the machine's speed seen from outside Palaver: when
    it rises in a window along with the server's, the machine slowed down there,
    not the server. One scan of /proc per sample serves every tree.
    """

    INTERVAL_S = 0.5

    def __init__(self, cpu_now: Callable[[dict[int, list[int]]], dict[str, float]]) -> None:
        self._cpu_now = cpu_now
        self._times: list[float] = []
        self._cpu: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            try:
                kids = children_map()
                wrk = [pid for pid in kids.get(os.getpid(), []) if Path(f"/proc/{pid}/comm").read_text() == "wrk\n"]
                cpu = {**self._cpu_now(kids), "wrk": sum(tree_cpu(pid, kids=kids) for pid in wrk)}
            except OSError:
                continue  # a process exited between listing and reading: the next sample counts it
            self._times.append(time.monotonic())
            self._cpu.append(cpu)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _at(self, t: float) -> dict[str, float]:
        """CPU seconds at `t`, interpolated; clamped to the samples (the last window ends as wrk stops
        sending, about when sampling stops)."""
        t = min(max(t, self._times[0]), self._times[-1])
        i = max(1, bisect.bisect_left(self._times, t))
        if self._times[i - 1] == t or i == len(self._times):
            return self._cpu[i - 1]
        (t0, a), (t1, b) = (self._times[i - 1], self._cpu[i - 1]), (self._times[i], self._cpu[i])
        return {k: a[k] + (b[k] - a[k]) * (t - t0) / (t1 - t0) for k in a}

    def per_window(self, start: float, window: int, count: int) -> list[dict[str, float]]:
        """CPU seconds of each group in each of `count` windows from `start` (empty without samples)."""
        if not self._times:
            return [{} for _ in range(count)]
        edges = [self._at(start + i * window) for i in range(count + 1)]
        return [{k: hi[k] - lo[k] for k in lo} for lo, hi in zip(edges, edges[1:], strict=False)]


def end_load(args: argparse.Namespace, workdir: Path, label: str, server: Server, key: str, ids_prefix: Path,
             seconds: int, cycle: bool, problems: list[str], postgres_pid: int | None = None) -> dict[str, Any]:
    """`seconds` of ends against one server: each request's (sent, latency) and the CPU it took."""
    c = args.connections
    wrk = Wrk(args.wrk, c, c, seconds + 120, workdir)
    log_prefix = workdir / f"latency-{label.replace(' ', '-')}"
    assert server.proc is not None and server.url is not None
    delivery = set(delivery_children(server.proc.pid))

    def cpu_now(kids: dict[int, list[int]] | None = None) -> dict[str, float]:
        # The server's whole tree (forked --workers included), its delivery process apart, and PostgreSQL's.
        kids = children_map() if kids is None else kids
        cpu = {"server": tree_cpu(server.proc.pid, exclude=delivery, kids=kids),
               "delivery": sum(tree_cpu(pid, kids=kids) for pid in delivery)}
        if postgres_pid is not None:
            cpu["postgres"] = tree_cpu(postgres_pid, kids=kids)
        return cpu

    # The earliest start; the threads start together once the last has read its ids (end_for.lua).
    start_at = time.monotonic() + 2.0 + c * 0.02
    go_file = Path(f"{log_prefix}.go")
    go_file.unlink(missing_ok=True)
    cpu0, ticks0, wrk0 = cpu_now(), machine_ticks(), children_cpu()
    with CpuSampler(cpu_now) as sampler:
        r = wrk.run(f"{label} end", END_FOR_LUA, server.url, key,
                    [str(ids_prefix), f"{start_at:.6f}", str(seconds), str(log_prefix), "1" if cycle else "0",
                     str(c)], None)
    cpu1, ticks1 = cpu_now(), machine_ticks()
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu["wrk"] = children_cpu() - wrk0  # wrk has been waited for; the servers still run
    if ticks0 is not None and ticks1 is not None:
        # The machine's busy time minus ours: whatever else shared the cores with the load.
        cpu["other"] = max(0.0, (ticks1[0] - ticks0[0]) / os.sysconf("SC_CLK_TCK") - sum(cpu.values()))
    problems.extend(f"{label}: {p}" for p in r["problems"])
    sent, latency = array("q"), array("q")
    statuses: dict[int, int] = {}
    ran_out, first = [], []
    for tid in range(c):
        lines = Path(f"{log_prefix}.{tid}").read_text().splitlines()
        for line in lines:
            s, lat, status = line.split()
            sent.append(int(s))
            latency.append(int(lat))
            statuses[int(status)] = statuses.get(int(status), 0) + 1
        if lines:
            first.append(int(lines[0].split()[0]))
            if not cycle and len(lines) == len(Path(f"{ids_prefix}.{tid}").read_text().split()):
                ran_out.append(int(lines[-1].split()[0]) / 1e6)
    if ran_out:
        problems.append(f"{label}: {len(ran_out)} connections ran out of ids, the first after "
                        f"{min(ran_out):.1f} s (create more with --conversations)")
    if set(statuses) - {200}:
        problems.append(f"{label}: answers other than 200: {statuses}")
    started = float(go_file.read_text()) if go_file.exists() else None
    if started is None:
        problems.append(f"{label}: wrk's threads never agreed on a start ({go_file.name} missing)")
    log(f"   {label}: {len(latency)} ends in {seconds} s ({len(latency) / seconds:.0f}/s); "
        f"threads started {max(0.0, started - start_at) if started else float('nan'):.1f} s after the earliest start")
    window_cpu = sampler.per_window(started, args.window, seconds // args.window) if started else []
    return {"sent": sent, "latency": latency, "seconds": seconds, "statuses": statuses, "cpu_s": cpu,
            "window_cpu_s": window_cpu,
            "machine_busy": busy_share(ticks0, ticks1), "wrk_command": wrk.command_lines,
            "start_spread_ms": (max(first) - min(first)) / 1e3 if first else None}


def silences_by_window(sent: list[int], latency: list[int], window: int, count: int) -> list[list[float]]:
    """Per window (the one it began in), every stretch over SILENCE_MS in which no connection got an answer (ms).

    A p99 over the mark can come from a slower machine (every request a
    little later; the CPU columns rise) or from moments in which the whole
    server stood still (a blocked event loop, a held write lock, a disk
    flush). wrk's connections each wait for their answer before sending
    again, so one silence delays one request per connection (64 of a
    window's ~70,000), however long it lasts: a window's p99 passes the
    mark on silences alone after a dozen of them, or after fewer on a
    machine that is slow as well. The silences tell the two apart.
    """
    done = sorted(s + lat for s, lat in zip(sent, latency, strict=True))
    out: list[list[float]] = [[] for _ in range(count)]
    for before, after in itertools.pairwise(done):
        if after - before > SILENCE_MS * 1000:
            out[min(before // (window * 1_000_000), count - 1)].append((after - before) / 1000)
    return out


def figures(window: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Windows (of each run in turn) and whole-run figures: requests, ends/s, p50, p99, max."""

    def stats(lat: list[int], seconds: float) -> dict[str, float]:
        if not lat:
            return {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
        return {"requests": len(lat), "rps": len(lat) / seconds, "p50_ms": pct(lat, 50) / 1e3,
                "p99_ms": pct(lat, 99) / 1e3, "max_ms": max(lat) / 1e3}

    out: list[dict[str, Any]] = []
    everything: list[int] = []
    for run in runs:
        buckets: list[list[int]] = [[] for _ in range(run["seconds"] // window)]
        for s, lat in zip(run["sent"], run["latency"], strict=True):
            buckets[min(s // (window * 1_000_000), len(buckets) - 1)].append(lat)
        cpu_s = run.get("window_cpu_s") or [{}] * len(buckets)
        silences = silences_by_window(run["sent"], run["latency"], window, len(buckets))
        out += [dict(stats(b, window), start_s=i * window, run=run["label"], silences_ms=silences[i],
                     cpu_us_per_request={k: v / len(b) * 1e6 for k, v in cpu_s[i].items()} if b else {})
                for i, b in enumerate(buckets)]
        everything += run["latency"]
    seconds = sum(run["seconds"] for run in runs)
    cpu: dict[str, float] = {}
    for run in runs:
        for k, v in run["cpu_s"].items():
            cpu[k] = cpu.get(k, 0.0) + v
    whole = stats(everything, seconds)
    statuses: dict[int, int] = {}
    for run in runs:
        for k, v in run["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {"windows": out, "whole": whole, "seconds": seconds, "statuses": statuses,
            "cpu_us_per_request": {k: v / whole["requests"] * 1e6 for k, v in cpu.items()} if everything else {},
            "machine_busy": [run["machine_busy"] for run in runs],
            "start_spread_ms": [run["start_spread_ms"] for run in runs],
            "wrk_command": runs[0]["wrk_command"][0]}


def where_stored(args: argparse.Namespace) -> str:
    if args.postgres:
        settings = f", settings {' '.join(args.pg_setting)}" if args.pg_setting else ""
        settings += ", CHECKPOINT just before the ends" if args.pg_checkpoint else ""
        return (f"a durable PostgreSQL cluster in {args.postgres} (started here; its CPU counted as postgres"
                f"{settings})")
    return "given (--database-url)" if args.database_url else "a new SQLite file"


def report(args: argparse.Namespace, info: dict[str, Any], created: dict[str, Any], servers: dict[str, Any],
           checked: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    log()
    log("=" * 78)
    log(f"Palaver sustained end load: {args.duration} s at {args.connections} connections")
    log("=" * 78)
    log(f"Machine : {info['nproc']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"Linux {info['kernel']}; wrk and the servers share these CPUs")
    log(f"Software: Python {info['python']}, uvicorn {info['uvicorn']}, uvloop {info['uvloop']}, "
        f"httptools {info['httptools']}, Starlette {info['starlette']}, {info['wrk']}")
    log(f"Palaver : commit {info['palaver_commit']}; {' '.join(args.palaver_cmd)} serve "
        f"{' '.join(args.serve_arg)}; database {where_stored(args)}")
    if created:
        log(f"Created : {created['count']} conversations through the API in {created['seconds']:.0f} s "
            f"({created['rps']:.0f}/s); stored when the ends began: {checked.get('stored_before', '?')}")
    log("Latency : per request, logged by each wrk thread (one connection each); nearest-rank percentiles")
    log(f"          over the requests sent in each {args.window} s window")
    title = {"palaver": "Palaver", "starlette": "Minimal Starlette (half before Palaver, half after)"}
    for name, fig in servers.items():
        log()
        log(f"{title[name]}")
        shown = ["server", "postgres", "wrk"] if args.postgres and name == "palaver" else ["server", "wrk"]
        log(f"   {'window':>16} | {'ends/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} | "
            f"{f'silent >{SILENCE_MS} ms':>19} | CPU us per request: " + " ".join(f"{k:>8}" for k in shown))
        for w in fig["windows"]:
            part = w["run"].split()[-1] + " " if name == "starlette" else ""
            where = f"{part}{w['start_s']:>3}-{w['start_s'] + args.window:>3} s"
            cpu_us = w.get("cpu_us_per_request") or {}
            quiet = w.get("silences_ms") or []
            quiet_text = f"{len(quiet)}, longest {max(quiet):.0f} ms" if quiet else "0"
            log(f"   {where:>16} | {w['rps']:8.0f} {w['p50_ms']:7.2f} {w['p99_ms']:7.2f} {w['max_ms']:7.1f} | "
                f"{quiet_text:>19} | " + " " * 20
                + " ".join(f"{cpu_us[k]:8.1f}" if k in cpu_us else f"{'-':>8}" for k in shown))
        wh = fig["whole"]
        quiet = [q for w in fig["windows"] for q in w.get("silences_ms") or []]
        log(f"   {'whole run':>16} | {wh['rps']:8.0f} {wh['p50_ms']:7.2f} {wh['p99_ms']:7.2f} {wh['max_ms']:7.1f} | "
            f"{len(quiet):>19}")
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in fig["cpu_us_per_request"].items())
        busy = ", ".join(f"{b:.0%}" for b in fig["machine_busy"] if b is not None)
        log(f"   {wh['requests']} requests {fig['statuses']}; CPU us per request: {cpu}; machine busy {busy}")
    log()
    targets: dict[str, Any] = {}
    if "palaver" in servers:
        worst = max(w["p99_ms"] for w in servers["palaver"]["windows"])
        targets["p99_every_window_ms"] = {"value": worst, "target": args.target_p99_ms,
                                          "pass": worst <= args.target_p99_ms}
        if "starlette" in servers and servers["starlette"]["whole"]["rps"] > 0:
            ratio = servers["palaver"]["whole"]["rps"] / servers["starlette"]["whole"]["rps"]
            targets["ratio_vs_starlette"] = {"value": ratio, "target": args.target_ratio,
                                             "pass": ratio >= args.target_ratio}
            log(f"Ends/s, Palaver / minimal Starlette : {ratio:5.2f}      target >= {args.target_ratio:.2f}   "
                f"{'PASS' if ratio >= args.target_ratio else 'FAIL'}")
        log(f"Palaver p99, worst window           : {worst:5.2f} ms   target <= {args.target_p99_ms:.0f} ms  "
            f"{'PASS' if worst <= args.target_p99_ms else 'FAIL'}")
    if problems:
        log("Correctness: RUN INVALID:")
        for p in problems:
            log(f"  - {p}")
        verdict = "INVALID"
    else:
        log(f"Correctness: every request answered 200; {checked.get('ended', '?')} conversations ended "
            f"= the {checked.get('acknowledged', '?')} acknowledged ends, {checked.get('active', '?')} still active.")
        verdict = "PASS" if len(targets) == 2 and all(t["pass"] for t in targets.values()) else (
            "FAIL" if any(not t["pass"] for t in targets.values()) else "INCOMPLETE")
    for name, fig in servers.items():
        log(f"wrk ({name}): {fig['wrk_command']}")
    if created:
        log(f"wrk (create): {created['wrk_command'][0]}")
    log(f"Overall: {verdict}")
    return {"verdict": verdict, "machine": info, "created": created, "servers": servers, "checked": checked,
            "targets": targets, "problems": problems,
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_path = shutil.which(args.wrk)
    if wrk_path is None:
        log(f"error: wrk not found ({args.wrk!r}); apt-get install wrk")
        return 2
    args.wrk = wrk_path
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="palaver-sustained-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir {workdir}")
    info = machine_info(args)
    problems: list[str] = []
    servers: list[Server] = []
    created: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    checked: dict[str, Any] = {}

    cluster: Any = None

    def work() -> None:
        nonlocal cluster
        if args.postgres:
            cluster = start_postgres(args.postgres, args.pg_setting)
            args.database_url = cluster.url("palaver")
        pal, url, key = start_palaver(args, workdir)
        servers.append(pal)
        client = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=120.0)
        ids, made = create(args, workdir, url, key, problems)
        created.update(made)
        if problems:
            return
        deal(ids, workdir / "ids", args.connections)
        half = args.duration // 2
        star: Server | None = None
        base_key = f"bench-{random.getrandbits(64):016x}"
        if not args.skip_starlette:
            log(f"== Minimal Starlette ({STARLETTE_APP.name}): {half} s of ends before Palaver's, {half} s after")
            star = Server("starlette", [args.baseline_python, str(STARLETTE_APP), "--host", "127.0.0.1", "--port",
                                        "0"], workdir / "starlette-server.log",
                          env={**os.environ, "BASELINE_API_KEY": base_key}, start_timeout=args.start_timeout)
            servers.append(star)
            star.start()
            deal(fake_ids(FAKE_IDS * args.connections, random.Random(7)), workdir / "fake-ids", args.connections)
            runs["starlette"] = [dict(end_load(args, workdir, "starlette before", star, base_key,
                                               workdir / "fake-ids", half, True, problems), label="starlette before")]
        checked["stored_before"] = total_count(client, "active") + total_count(client, "ended")
        ended0 = total_count(client, "ended")
        if cluster is not None and args.pg_checkpoint:
            started = time.monotonic()
            cluster.psql("CHECKPOINT", "palaver")
            log(f"== CHECKPOINT before the ends ({time.monotonic() - started:.1f} s)")
        log(f"== Palaver: {args.duration} s of ends")
        runs["palaver"] = [dict(end_load(args, workdir, "palaver", pal, key, workdir / "ids", args.duration, False,
                                         problems, cluster.process.pid if cluster else None), label="palaver")]
        acknowledged = runs["palaver"][0]["statuses"].get(200, 0)
        ended, active = total_count(client, "ended"), total_count(client, "active")
        checked.update(ended=ended - ended0, acknowledged=acknowledged, active=active)
        if ended - ended0 != acknowledged or active != len(ids) - acknowledged:
            problems.append(f"palaver: {ended - ended0} conversations ended for {acknowledged} acknowledged ends; "
                            f"{active} active, expected {len(ids) - acknowledged}")
        if not pal.alive():
            problems.append("palaver exited during the run")
        client.close()
        if star is not None:
            log(f"== Minimal Starlette again: {half} s of ends")
            runs["starlette"].append(dict(end_load(args, workdir, "starlette after", star, base_key,
                                                   workdir / "fake-ids", half, True, problems),
                                          label="starlette after"))

    def stop() -> None:
        for s in servers:
            if s.alive():
                log(f"   {s.name} stopped ({describe_rc(s.stop())})")
        if cluster is not None:
            cluster.stop(remove=False)

    run_guarded(work, stop, problems)
    figs = {name: figures(args.window, parts) for name, parts in runs.items()}
    out = report(args, info, created, figs, checked, problems)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
        log(f"figures written to {args.json}")
    if args.workdir is None and not problems:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.workdir is None:
        log(f"logs kept in {workdir}")
    return {"PASS": 0, "FAIL": 1, "INCOMPLETE": 0}.get(out["verdict"], 2)


if __name__ == "__main__":
    sys.exit(main())
