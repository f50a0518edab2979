#!/usr/bin/env python3
"""Sustained end load: Palaver's end endpoint for a minute over a large database.

``run.py`` ends 20,000 conversations per round, about a second of load on a
small database; a tail that grows with load duration and database size does
not show there.  This mode:

1. starts ``palaver serve`` (``--palaver-cmd``, ``--serve-arg``) on a fresh
   SQLite file, or on ``--database-url``;
2. creates ``--conversations`` conversations through the API with wrk
   (``create.lua``, which saves the ids it is given), and says how long that
   took;
3. ends conversations for ``--duration`` seconds at ``--connections``
   connections (``end_for.lua``: one wrk thread per connection, each ending
   its own share of the ids once each, logging every request's latency);
4. puts the same load, with the same script, on the minimal Starlette app
   (``baseline_starlette.py``, fake ids) in the same run -- before Palaver's,
   unless ``--skip-starlette``;
5. checks through the API that exactly the acknowledged ends were made;
6. prints machine information, p50/p99 and ends/s for every ``--window``
   seconds and for the whole run, for both servers, the ratio, the targets,
   and with ``--json OUT`` the same figures as JSON.

Percentiles are computed here from the per-request latencies the wrk threads
log (nearest rank), bucketed by the time each request was sent; they carry no
coordinated-omission correction (wrk's own histogram adds one).

Exit status: 0 = valid run, targets met; 1 = valid run, a target missed;
2 = invalid run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from run import (  # the pieces run.py's modes share (same directory)
    CREATE_LUA,
    STARLETTE_APP,
    WRK_DIR,
    BenchError,
    Server,
    Wrk,
    cpu_seconds,
    delivery_children,
    describe_rc,
    fake_ids,
    log,
    machine_info,
    machine_ticks,
    busy_share,
    pct,
    run_guarded,
    total_count,
)

END_FOR_LUA = WRK_DIR / "end_for.lua"
TARGET_RATIO = 0.7     # Palaver ends/s / minimal Starlette ends/s, whole run
TARGET_P99_MS = 15.0   # in every window
FAKE_IDS = 20_000      # per connection for the baseline, which stores nothing (cycled)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=1_500_000,
                   help="conversations created before the ends; also the ids the ends use, so it "
                        "must outlast --duration at Palaver's end rate (default 1,500,000)")
    p.add_argument("--duration", type=int, default=60, help="seconds of end load per server (default 60)")
    p.add_argument("--window", type=int, default=5, help="seconds per reported window (default 5)")
    p.add_argument("--connections", type=int, default=64,
                   help="end load: connections, each with its own wrk thread (default 64)")
    p.add_argument("--create-threads", type=int, default=2, help="wrk threads for the creates (default 2)")
    p.add_argument("--palaver-cmd", type=shlex.split, default=[sys.executable, "-m", "palaver"],
                   help="command that runs the palaver CLI, shell-quoted (default: this Python -m palaver)")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `palaver serve`, repeatable (e.g. --serve-arg=--workers=2)")
    p.add_argument("--database-url", default=None,
                   help="database for Palaver (default: a new SQLite file in the workdir); it gets a new "
                        "account, and the checks count that account's conversations only")
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
    if args.duration < args.window or args.duration % args.window:
        p.error("--duration must be a positive multiple of --window")
    if args.conversations < args.connections:
        p.error("need at least one conversation per connection")
    return args


def start_palaver(args: argparse.Namespace, workdir: Path) -> tuple[Server, str, str]:
    """`palaver keys create` for a new account, then `palaver serve`; returns (server, url, key)."""
    db_url = args.database_url or f"sqlite:///{workdir / 'palaver-sustained.db'}"
    shown_url = db_url if "@" not in db_url else db_url.split("@", 1)[1]
    log(f"== Palaver ({' '.join(args.palaver_cmd)}), database {shown_url}")
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


def read_ids(prefix: Path, threads: int) -> list[str]:
    ids: list[str] = []
    for tid in range(threads):
        ids += Path(f"{prefix}.{tid}").read_text().split()
    return ids


def deal(ids: list[str], prefix: Path, connections: int) -> None:
    """Ids dealt round-robin, one file per connection (each wrk thread reads only its own)."""
    for tid in range(connections):
        Path(f"{prefix}.{tid}").write_text("".join(i + "\n" for i in ids[tid::connections]))


def children_cpu() -> float:
    """CPU seconds used by this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(p) or 0.0 for p in group) for name, group in pids.items()}


def end_load(args: argparse.Namespace, workdir: Path, name: str, server: Server, key: str,
             ids_prefix: Path, cycle: bool, problems: list[str]) -> dict[str, Any]:
    """`--duration` seconds of ends against one server; per-window and whole-run figures."""
    c = args.connections
    wrk = Wrk(args.wrk, c, c, args.duration + 120, workdir)
    log_prefix = workdir / f"latency-{name}"
    assert server.proc is not None and server.url is not None
    pids = {"server": [server.proc.pid], "delivery": delivery_children(server.proc.pid)}
    start_at = time.monotonic() + 2.0 + c * 0.02  # time for wrk to read the ids and start its threads
    cpu0, ticks0, wrk0 = load_cpu(pids), machine_ticks(), children_cpu()
    r = wrk.run(f"{name} end", END_FOR_LUA, server.url, key,
                [str(ids_prefix), f"{start_at:.6f}", str(args.duration), str(log_prefix), "1" if cycle else "0"],
                None)
    cpu1, ticks1 = load_cpu(pids), machine_ticks()
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu["wrk"] = children_cpu() - wrk0  # wrk has been waited for; the servers still run
    if ticks0 is not None and ticks1 is not None:
        # Busy CPU time of the whole machine between the readings, minus ours: anything
        # else that ran (it shares the cores with the load, and the figures show it).
        cpu["other"] = max(0.0, (ticks1[0] - ticks0[0]) / os.sysconf("SC_CLK_TCK") - sum(cpu.values()))
    for p in r["problems"]:
        problems.append(f"{name} end: {p}")
    samples: list[tuple[int, int, int]] = []
    ran_out: list[float] = []
    for tid in range(c):
        rows = [tuple(map(int, line.split())) for line in Path(f"{log_prefix}.{tid}").read_text().splitlines()]
        if not cycle and rows and len(rows) == len(Path(f"{ids_prefix}.{tid}").read_text().split()):
            ran_out.append(rows[-1][0] / 1e6)
        samples += rows  # type: ignore[arg-type]
    if ran_out:
        problems.append(f"{name}: {len(ran_out)} connections ran out of ids, the first after "
                        f"{min(ran_out):.1f} s (create more with --conversations)")
    statuses: dict[int, int] = {}
    for _, _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    if set(statuses) - {200}:
        problems.append(f"{name}: non-200 answers {statuses}")
    late = min((s for s, _, _ in samples), default=0) / 1e3
    figures = summarise(args, samples)
    figures.update(name=name, requests=len(samples), statuses=statuses, first_request_ms=late,
                   cpu_s=cpu, machine_busy=busy_share(ticks0, ticks1),
                   wrk_command=wrk.command_lines)
    log(f"   {name}: {len(samples)} ends in {args.duration}s, {figures['whole']['rps']:.0f}/s, "
        f"p50 {figures['whole']['p50_ms']:.2f} ms, p99 {figures['whole']['p99_ms']:.2f} ms")
    return figures


def summarise(args: argparse.Namespace, samples: list[tuple[int, int, int]]) -> dict[str, Any]:
    """Per-window and whole-run ends/s and percentiles, windows by the time each request was sent."""
    w_us = args.window * 1_000_000
    windows: list[list[int]] = [[] for _ in range(args.duration // args.window)]
    for sent, latency, _ in samples:
        windows[min(int(sent // w_us), len(windows) - 1)].append(latency)

    def figures(lat: list[int], seconds: float) -> dict[str, float]:
        if not lat:
            return {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"),
                    "max_ms": float("nan")}
        return {"requests": len(lat), "rps": len(lat) / seconds, "p50_ms": pct(lat, 50) / 1e3,
                "p99_ms": pct(lat, 99) / 1e3, "max_ms": max(lat) / 1e3}

    return {"windows": [dict(figures(lat, args.window), start_s=i * args.window) for i, lat in enumerate(windows)],
            "whole": figures([lat for _, lat, _ in samples], args.duration)}


def report(args: argparse.Namespace, info: dict[str, Any], created: dict[str, Any], runs: dict[str, Any],
           problems: list[str]) -> dict[str, Any]:
    log()
    log("=" * 78)
    log(f"Palaver sustained end load: {args.duration} s at {args.connections} connections")
    log("=" * 78)
    log(f"Machine : {info['nproc']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, Linux {info['kernel']}")
    log(f"Software: Python {info['python']}, uvicorn {info['uvicorn']}, uvloop {info['uvloop']}, "
        f"httptools {info['httptools']}, Starlette {info['starlette']}, {info['wrk']}")
    log(f"Palaver : commit {info['palaver_commit']}; serve args: {' '.join(args.serve_arg) or 'none'}")
    if created:
        log(f"Created : {created['count']} conversations in {created['seconds']:.0f} s ({created['rps']:.0f}/s, "
            f"wrk {args.create_threads} threads, {args.connections} connections); stored before the ends: "
            f"{created['stored']}")
    log("Latency : per request, logged by each wrk thread (one connection each), nearest-rank percentiles,")
    log(f"          windows of {args.window} s by the time the request was sent")
    log()
    names = [n for n in ("starlette", "palaver") if n in runs]
    title = {"palaver": "Palaver", "starlette": "Minimal Starlette"}
    log(f"{'window':>9} | " + " | ".join(f"{title[n]:^30}" for n in names))
    log(f"{'':>9} | " + " | ".join(f"{'ends/s':>8} {'p50 ms':>6} {'p99 ms':>6} {'max ms':>7}" for _ in names))
    rows = len(runs[names[0]]["windows"]) if names else 0
    for i in range(rows):
        start = i * args.window
        cells = [runs[n]["windows"][i] for n in names]
        log(f"{start:>3}-{start + args.window:>3} s | " + " | ".join(
            f"{w['rps']:8.0f} {w['p50_ms']:6.2f} {w['p99_ms']:6.2f} {w['max_ms']:7.1f}" for w in cells))
    log(f"{'whole':>9} | " + " | ".join(
        f"{runs[n]['whole']['rps']:8.0f} {runs[n]['whole']['p50_ms']:6.2f} {runs[n]['whole']['p99_ms']:6.2f} "
        f"{runs[n]['whole']['max_ms']:7.1f}" for n in names))
    for n in names:
        r = runs[n]
        per = {k: v / r["requests"] * 1e6 for k, v in r["cpu_s"].items()} if r["requests"] else {}
        log(f"{title[n]}: {r['requests']} requests, statuses {r['statuses']}; CPU us per request: "
            + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
            + (f"; machine busy {r['machine_busy']:.0%}" if r["machine_busy"] is not None else ""))
    log()
    targets: dict[str, Any] = {}
    if "palaver" in runs:
        worst = max(w["p99_ms"] for w in runs["palaver"]["windows"])
        targets["p99_every_window_ms"] = {"value": worst, "target": TARGET_P99_MS, "pass": worst <= TARGET_P99_MS}
        if "starlette" in runs and runs["starlette"]["whole"]["rps"] > 0:
            ratio = runs["palaver"]["whole"]["rps"] / runs["starlette"]["whole"]["rps"]
            targets["ratio_vs_starlette"] = {"value": ratio, "target": TARGET_RATIO, "pass": ratio >= TARGET_RATIO}
            log(f"Ends/s Palaver / minimal Starlette: {ratio:.2f}   target >= {TARGET_RATIO:.2f}  "
                f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
        log(f"Palaver's worst window p99: {worst:.2f} ms   target <= {TARGET_P99_MS:.0f} ms in every window  "
            f"{'PASS' if worst <= TARGET_P99_MS else 'FAIL'}")
    if problems:
        log("Correctness: RUN INVALID:")
        for p in problems:
            log(f"  - {p}")
        verdict = "INVALID"
    else:
        log("Correctness: every request answered 200; the ended count grew by exactly the acknowledged ends.")
        verdict = "PASS" if len(targets) == 2 and all(t["pass"] for t in targets.values()) else (
            "FAIL" if any(not t["pass"] for t in targets.values()) else "INCOMPLETE")
    for n in names:
        log(f"wrk ({n}): {runs[n]['wrk_command'][0]}")
    log(f"Overall: {verdict}")
    return {"verdict": verdict, "machine": info, "created": created, "runs": runs, "targets": targets,
            "problems": problems,
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
    runs: dict[str, Any] = {}

    def work() -> None:
        pal, url, key = start_palaver(args, workdir)
        servers.append(pal)
        client = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=120.0)
        n = args.conversations
        log(f"== Creating {n} conversations")
        saved = workdir / "created-ids"
        wrk = Wrk(args.wrk, args.create_threads, args.connections, 7200, workdir)
        r = wrk.run("palaver create", CREATE_LUA, url, key, str(n), n, env={"PALAVER_BENCH_IDS_OUT": str(saved)})
        problems.extend(f"create: {p}" for p in r["problems"])
        ids = read_ids(saved, r["threads"])
        if len(ids) != n or len(set(ids)) != n:
            raise BenchError(f"create: {len(ids)} ids saved ({len(set(ids))} distinct), expected {n}")
        stored = total_count(client, "active") + total_count(client, "ended")
        created.update(count=n, seconds=r["elapsed_s"], rps=r["rps"], stored=stored)
        log(f"   {n} created in {r['elapsed_s']:.0f} s ({r['rps']:.0f}/s); {stored} stored")
        if problems:
            return
        deal(ids, workdir / "ids", args.connections)
        if not args.skip_starlette:
            log(f"== Minimal Starlette ({STARLETTE_APP.name}), {args.duration} s of ends")
            base_key = f"bench-{random.getrandbits(64):016x}"
            star = Server("starlette", [args.baseline_python, str(STARLETTE_APP), "--host", "127.0.0.1",
                                        "--port", "0"], workdir / "starlette-server.log",
                          env={**os.environ, "BASELINE_API_KEY": base_key},
                          start_timeout=args.start_timeout)
            servers.append(star)
            star.start()
            deal(fake_ids(FAKE_IDS * args.connections, random.Random(7)), workdir / "fake-ids", args.connections)
            runs["starlette"] = end_load(args, workdir, "starlette", star, base_key, workdir / "fake-ids",
                                         True, problems)
            log(f"   starlette stopped ({describe_rc(star.stop())})")
        log(f"== Palaver, {args.duration} s of ends")
        ended0 = total_count(client, "ended")
        runs["palaver"] = end_load(args, workdir, "palaver", pal, key, workdir / "ids", False, problems)
        acknowledged = runs["palaver"]["statuses"].get(200, 0)
        ended, active = total_count(client, "ended"), total_count(client, "active")
        log(f"   afterwards: {ended} ended (was {ended0}, +{acknowledged} acknowledged), {active} active")
        if ended - ended0 != acknowledged or active != n - acknowledged:
            problems.append(f"palaver: {ended - ended0} conversations ended for {acknowledged} acknowledged "
                            f"ends; {active} active, expected {n - acknowledged}")
        if not pal.alive():
            problems.append("palaver exited during the run")
        client.close()

    def stop() -> None:
        for s in servers:
            if s.alive():
                log(f"   {s.name} stopped ({describe_rc(s.stop())})")

    run_guarded(work, stop, problems)
    out = report(args, info, created, runs, problems)
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
