#!/usr/bin/env python3
"""Palaver conversation create/end benchmark.

Measures how fast Palaver creates and ends conversations under concurrent
load, and compares it with a raw ASGI baseline app served by the very same
stack (uvicorn, one process, uvloop, httptools, no access log), which is the
floor any Python server on this stack can reach.

Load is generated with wrk (``apt-get install wrk``) driven by the Lua scripts
in ``benchmarks/wrk/``, which send *exactly* N requests (wrk itself only knows
time-bounded runs).  See ``benchmarks/README.md``.

Usage::

    /work/venv/bin/python benchmarks/run.py                # full run
    /work/venv/bin/python benchmarks/run.py --only-baseline --n 5000

Exit status: 0 = run valid and targets met, 1 = run valid but a target
missed, 2 = run invalid (errors, non-200 responses, wrong counts, crash).

Only the standard library and httpx are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WRK_DIR = HERE / "wrk"
CREATE_LUA = WRK_DIR / "create.lua"
END_LUA = WRK_DIR / "end.lua"
BASELINE_APP = HERE / "baseline_app.py"

LISTEN_RE = re.compile(r"listening on (http://[^\s/]+)")
THREAD_DONE_RE = re.compile(r"^WRK_THREAD_DONE (\d+)\s*$")
WRK_JSON_PREFIX = "WRK_JSON "

TARGET_END_RATIO = 0.5
TARGET_END_P99_MS = 25.0


class BenchError(Exception):
    """The benchmark could not be carried out (as opposed to a slow result)."""


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Servers


class Server:
    """A server subprocess that prints ``... listening on http://HOST:PORT``."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.env = env
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._log = None
        self._reader: threading.Thread | None = None

    def start(self) -> str:
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "w", buffering=1)
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # a Ctrl-C on the driver is ours to handle
        )
        found: queue.Queue[str] = queue.Queue()

        def read_stdout() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self._log.write(line)
                m = LISTEN_RE.search(line)
                if m and self.url is None:
                    found.put(m.group(1))

        self._reader = threading.Thread(target=read_stdout, daemon=True)
        self._reader.start()

        deadline = time.monotonic() + self.start_timeout
        while self.url is None:
            try:
                self.url = found.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise BenchError(
                        f"{self.name} exited with status {self.proc.returncode} "
                        f"before listening; log {self.log_path}:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.name} did not print 'listening on http://...' "
                        f"within {self.start_timeout:.0f}s; log:\n{self.log_tail()}"
                    )

        while True:
            try:
                r = httpx.get(self.url + "/health", timeout=2.0)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name}: GET /health never answered 200; "
                    f"log:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        return self.url

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} ignored SIGTERM for {timeout:.0f}s; killing it")
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


# ---------------------------------------------------------------------------
# wrk


class Wrk:
    def __init__(self, binary: str, threads: int, connections: int,
                 time_limit: int, workdir: Path) -> None:
        self.binary = binary
        self.threads = threads
        self.connections = connections
        self.time_limit = time_limit
        self.workdir = workdir
        self.command_lines: list[str] = []

    def run(self, label: str, script: Path, url: str, key: str,
            script_arg: str, expected: int) -> dict[str, Any]:
        """Run one wrk load of exactly ``expected`` requests and return figures."""
        threads = min(self.threads, max(1, expected))
        connections = max(self.connections, threads)
        cmd = [
            self.binary, "--latency",
            "-t", str(threads), "-c", str(connections),
            "-d", f"{self.time_limit}s", "--timeout", "10s",
            "-s", str(script),
            "-H", f"x-api-key: {key}",
            url, "--", script_arg, str(threads),
        ]
        shown = " ".join(shlex.quote(c) for c in cmd).replace(key, "$API_KEY")
        self.command_lines.append(f"[{label}] {shown}")

        out_lines: list[str] = []
        err_lines: list[str] = []
        done_threads: set[int] = set()
        all_done = threading.Event()

        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)

        def read_out() -> None:
            assert proc.stdout
            for line in proc.stdout:
                out_lines.append(line)

        def read_err() -> None:
            assert proc.stderr
            for line in proc.stderr:
                m = THREAD_DONE_RE.match(line)
                if m:
                    done_threads.add(int(m.group(1)))
                    if len(done_threads) >= threads:
                        all_done.set()
                else:
                    err_lines.append(line)

        readers = [threading.Thread(target=read_out, daemon=True),
                   threading.Thread(target=read_err, daemon=True)]
        for t in readers:
            t.start()

        started = time.monotonic()
        hard_deadline = started + self.time_limit + 30
        interrupted = False
        try:
            # Wait for every thread to finish its quota (or wrk to give up).
            while not all_done.is_set() and proc.poll() is None:
                if time.monotonic() > hard_deadline:
                    break
                all_done.wait(0.05)
            # wrk's main thread sleeps for the whole -d: wake it with SIGINT so
            # it prints its report now.  SIGINT is ignored until wrk has started
            # its threads, hence the retries.
            if all_done.is_set():
                while proc.poll() is None and time.monotonic() < hard_deadline:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                    try:
                        proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        pass
            try:
                proc.wait(timeout=max(1.0, hard_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise BenchError(f"[{label}] wrk did not finish within "
                                 f"{self.time_limit + 30}s; killed")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            for t in readers:
                t.join(timeout=5)

        stdout = "".join(out_lines)
        stderr = "".join(err_lines)
        safe = label.replace(" ", "_").replace("/", "_")
        (self.workdir / f"wrk-{safe}.out").write_text(stdout + "\n--- stderr ---\n" + stderr)

        data = None
        for line in out_lines:
            if line.startswith(WRK_JSON_PREFIX):
                data = json.loads(line[len(WRK_JSON_PREFIX):])
        if data is None:
            raise BenchError(
                f"[{label}] wrk exited with status {proc.returncode} without a "
                f"WRK_JSON summary.\nstdout:\n{stdout}\nstderr:\n{stderr}"
            )

        lat = data["latency_us"]
        elapsed = float(data["elapsed_s"])
        received = int(data["received"])
        statuses = {int(k): int(v) for k, v in data.get("statuses", {}).items()}
        errors = data["wrk"].get("errors", {})
        problems: list[str] = []
        if len(done_threads) < threads:
            problems.append(
                f"only {len(done_threads)}/{threads} wrk threads completed their "
                f"quota within {self.time_limit}s (lost requests: socket errors "
                f"or a stalled server)")
        if received != expected or int(data["sent"]) != expected:
            problems.append(f"sent {data['sent']} / received {received} responses, "
                            f"expected exactly {expected}")
        non200 = {s: n for s, n in statuses.items() if s != 200}
        if non200:
            problems.append(f"non-200 responses: {non200}")
        bad_errors = {k: v for k, v in errors.items() if v and k != "status"}
        if bad_errors:
            problems.append(f"wrk socket errors: {bad_errors}")
        if stderr.strip():
            problems.append(f"wrk stderr: {stderr.strip()[:500]}")

        return {
            "label": label,
            "requests": received,
            "expected": expected,
            "elapsed_s": elapsed,
            "rps": received / elapsed if elapsed > 0 else 0.0,
            "p50_ms": lat["p50"] / 1000.0,
            "p90_ms": lat["p90"] / 1000.0,
            "p99_ms": lat["p99"] / 1000.0,
            "p999_ms": lat["p999"] / 1000.0,
            "max_ms": lat["max"] / 1000.0,
            "mean_ms": lat["mean"] / 1000.0,
            "statuses": statuses,
            "non_200": sum(non200.values()),
            "wrk_errors": errors,
            "threads": threads,
            "connections": connections,
            "interrupted": interrupted,
            "problems": problems,
        }


def describe_rc(rc: int | None) -> str:
    if rc is None:
        return "not started"
    if rc < 0:
        try:
            return f"terminated by {signal.Signals(-rc).name}"
        except ValueError:
            return f"terminated by signal {-rc}"
    return f"exit status {rc}"


def fmt_result(r: dict[str, Any]) -> str:
    return (f"{r['requests']} req in {r['elapsed_s']:.2f}s = {r['rps']:.0f} req/s, "
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"max {r['max_ms']:.1f} ms, non-200 {r['non_200']}")


# ---------------------------------------------------------------------------
# Palaver API helpers


def list_ids(client: httpx.Client, status: str, expected_max: int) -> tuple[list[str], int]:
    """All conversation ids with ``status``, paging through the list endpoint."""
    ids: list[str] = []
    total = None
    max_pages = expected_max // 1000 + 5
    for page in range(1, max_pages + 1):
        r = client.get("/v2/conversations",
                       params={"status": status, "limit": 1000, "page": page})
        if r.status_code != 200:
            raise BenchError(f"GET /v2/conversations?status={status}&page={page} "
                             f"-> {r.status_code}: {r.text[:300]}")
        body = r.json()
        data = body.get("data", [])
        total = int(body.get("total_count", -1))
        for item in data:
            st = item.get("status")
            if st is not None and st != status:
                raise BenchError(f"list filter status={status} returned a "
                                 f"conversation with status {st!r}: {item}")
            ids.append(item["conversation_id"])
        if not data or len(ids) >= total:
            break
    return ids, (total if total is not None else -1)


def total_count(client: httpx.Client, status: str) -> int:
    r = client.get("/v2/conversations", params={"status": status, "limit": 1, "page": 1})
    if r.status_code != 200:
        raise BenchError(f"GET /v2/conversations?status={status} -> "
                         f"{r.status_code}: {r.text[:300]}")
    return int(r.json()["total_count"])


def write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("".join(i + "\n" for i in ids))


def fake_ids(n: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("c%015x" % rng.getrandbits(60))
    return list(seen)


# ---------------------------------------------------------------------------
# Phases


def run_palaver(args: argparse.Namespace, wrk: Wrk, workdir: Path,
                problems: list[str], result: dict[str, Any]) -> None:
    palaver = args.palaver_cmd
    db_path = workdir / "palaver-bench.db"
    db_url = f"sqlite:///{db_path}"
    log(f"== Palaver ({' '.join(palaver)})")
    log(f"   database {db_url}")
    keys_cmd = palaver + ["keys", "create", "--database-url", db_url, "--name", "bench"]
    if args.max_concurrent is not None:
        # All N conversations are active at once before the end phase.
        if args.max_concurrent < args.n:
            raise BenchError(f"--max-concurrent {args.max_concurrent} is below --n {args.n}: "
                             f"the creates would hit the account's limit")
        keys_cmd += ["--max-concurrent", str(args.max_concurrent)]
    log(f"   account concurrency limit: "
        f"{args.max_concurrent if args.max_concurrent is not None else 'none'}")
    try:
        cp = subprocess.run(keys_cmd, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError("`palaver keys create` did not finish within 120s")
    if cp.returncode != 0:
        raise BenchError(f"`{' '.join(keys_cmd)}` failed with status "
                         f"{cp.returncode}:\n{cp.stdout}\n{cp.stderr}")
    lines = [ln.strip() for ln in cp.stdout.splitlines() if ln.strip()]
    if not lines:
        raise BenchError(f"`palaver keys create` printed nothing:\n{cp.stderr}")
    key = lines[-1]

    server = Server("palaver", palaver + ["serve", "--host", "127.0.0.1", "--port", "0",
                                          "--database-url", db_url],
                    workdir / "palaver-server.log", start_timeout=args.start_timeout)
    result["server_log"] = str(server.log_path)
    try:
        url = server.start()
        log(f"   serving at {url} (log {server.log_path})")
        client = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60.0)
        with client:
            def check(cond: bool, msg: str) -> None:
                if not cond:
                    problems.append(f"palaver: {msg}")
                    log(f"   !! {msg}")

            if args.warmup:
                r = wrk.run("palaver warm-up create", CREATE_LUA, url, key,
                            str(args.warmup), args.warmup)
                log(f"   warm-up create: {fmt_result(r)}")
                for p in r["problems"]:
                    check(False, f"warm-up create: {p}")
                ids, total = list_ids(client, "active", args.warmup)
                check(len(ids) == args.warmup and total == args.warmup,
                      f"after warm-up create: {len(ids)} active ids listed, "
                      f"total_count {total}, expected {args.warmup}")
                idfile = workdir / "palaver-warmup-ids.txt"
                write_ids(idfile, ids)
                r = wrk.run("palaver warm-up end", END_LUA, url, key, str(idfile), len(ids))
                log(f"   warm-up end:    {fmt_result(r)}")
                for p in r["problems"]:
                    check(False, f"warm-up end: {p}")
                active = total_count(client, "active")
                check(active == 0, f"after warm-up end: {active} still active")

            r = wrk.run("palaver create", CREATE_LUA, url, key, str(args.n), args.n)
            log(f"   create:         {fmt_result(r)}")
            for p in r["problems"]:
                check(False, f"create: {p}")
            result["create"] = r

            t0 = time.monotonic()
            ids, total = list_ids(client, "active", args.n)
            list_s = time.monotonic() - t0
            log(f"   listed {len(ids)} active ids (total_count {total}) in {list_s:.2f}s")
            check(len(ids) == args.n and total == args.n,
                  f"after create: {len(ids)} active ids listed, total_count {total}, "
                  f"expected {args.n}")
            check(len(set(ids)) == len(ids),
                  f"list returned {len(ids) - len(set(ids))} duplicate ids")
            check(all(re.fullmatch(r"c[0-9a-f]{15}", i) for i in ids),
                  "some conversation ids do not look like c + 15 hex")
            ids = list(dict.fromkeys(ids))
            idfile = workdir / "palaver-ids.txt"
            write_ids(idfile, ids)

            r = wrk.run("palaver end", END_LUA, url, key, str(idfile), len(ids))
            log(f"   end:            {fmt_result(r)}")
            for p in r["problems"]:
                check(False, f"end: {p}")
            result["end"] = r

            active = total_count(client, "active")
            ended = total_count(client, "ended")
            log(f"   afterwards: active total_count {active}, ended total_count {ended}")
            check(active == 0, f"after end: active total_count {active}, expected 0")
            check(ended == args.n + args.warmup,
                  f"after end: ended total_count {ended}, expected "
                  f"{args.n + args.warmup} ({args.n} + {args.warmup} warm-up)")
            result["verify"] = {"active": active, "ended": ended,
                                "expected_ended": args.n + args.warmup}
        if not server.alive():
            check(False, f"server exited during the run (status {server.proc.returncode})")
    finally:
        rc = server.stop()
        log(f"   palaver stopped ({describe_rc(rc)})")


def run_baseline(args: argparse.Namespace, wrk: Wrk, workdir: Path,
                 problems: list[str], result: dict[str, Any]) -> None:
    key = secrets.token_urlsafe(24)
    env = dict(os.environ, BASELINE_API_KEY=key)
    cmd = [args.baseline_python, str(BASELINE_APP), "--host", "127.0.0.1", "--port", "0"]
    log(f"== Baseline (raw ASGI, {BASELINE_APP.name})")
    server = Server("baseline", cmd, workdir / "baseline-server.log", env=env,
                    start_timeout=args.start_timeout)
    rng = random.Random(1234)
    try:
        url = server.start()
        log(f"   serving at {url}")

        def check_run(r: dict[str, Any], what: str) -> None:
            for p in r["problems"]:
                problems.append(f"baseline {what}: {p}")
                log(f"   !! {what}: {p}")

        if args.warmup:
            r = wrk.run("baseline warm-up create", CREATE_LUA, url, key,
                        str(args.warmup), args.warmup)
            log(f"   warm-up create: {fmt_result(r)}")
            check_run(r, "warm-up create")
            idfile = workdir / "baseline-warmup-ids.txt"
            write_ids(idfile, fake_ids(args.warmup, rng))
            r = wrk.run("baseline warm-up end", END_LUA, url, key, str(idfile), args.warmup)
            log(f"   warm-up end:    {fmt_result(r)}")
            check_run(r, "warm-up end")

        r = wrk.run("baseline create", CREATE_LUA, url, key, str(args.n), args.n)
        log(f"   create:         {fmt_result(r)}")
        check_run(r, "create")
        result["create"] = r

        idfile = workdir / "baseline-ids.txt"
        write_ids(idfile, fake_ids(args.n, rng))
        r = wrk.run("baseline end", END_LUA, url, key, str(idfile), args.n)
        log(f"   end:            {fmt_result(r)}")
        check_run(r, "end")
        result["end"] = r
    finally:
        rc = server.stop()
        log(f"   baseline stopped ({describe_rc(rc)})")


# ---------------------------------------------------------------------------
# Reporting


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    wrk_version = "unknown"
    try:
        cp = subprocess.run([args.wrk, "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = (cp.stdout.splitlines() or ["unknown"])[0].split(" Copyright")[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    commit = "unknown"
    try:
        cp = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, timeout=10)
        if cp.returncode == 0:
            commit = cp.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "wrk": wrk_version,
        "palaver_commit": commit,
    }


def print_report(args: argparse.Namespace, info: dict[str, Any],
                 pal: dict[str, Any] | None, base: dict[str, Any] | None,
                 wrk: Wrk, problems: list[str]) -> dict[str, Any]:
    log()
    log("=" * 78)
    log("Palaver benchmark: conversation create / end")
    log("=" * 78)
    log(f"Machine : {info['nproc']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}")
    log(f"          Linux {info['kernel']}; wrk and the server share these CPUs")
    log(f"Software: Python {info['python']}, uvicorn {info['uvicorn']}, "
        f"uvloop {info['uvloop']}, httptools {info['httptools']}, {info['wrk']}")
    log(f"Palaver : commit {info['palaver_commit']}")
    log(f"Load    : N={args.n} conversations, {args.connections} connections, "
        f"{args.threads} wrk threads, warm-up {args.warmup} creates+ends "
        f"(not counted) before each measured phase")
    log()

    def cell(res: dict[str, Any] | None, op: str, key: str, fmt: str) -> str:
        if not res or op not in res:
            return f"{'-':>8}"
        return format(res[op][key], fmt)

    hdr = (f"{'':8}| {'Palaver':^26} | {'Baseline (raw ASGI)':^26} | {'ratio':>6}")
    sub = (f"{'':8}| {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
           f"| {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'thrpt':>6}")
    log(hdr)
    log(sub)
    log("-" * len(sub))
    ratios: dict[str, float | None] = {}
    for op in ("create", "end"):
        ratio = None
        if pal and base and op in pal and op in base and base[op]["rps"] > 0:
            ratio = pal[op]["rps"] / base[op]["rps"]
        ratios[op] = ratio
        log(f"{op:8}| {cell(pal, op, 'rps', '8.0f')} {cell(pal, op, 'p50_ms', '8.2f')} "
            f"{cell(pal, op, 'p99_ms', '8.2f')} | {cell(base, op, 'rps', '8.0f')} "
            f"{cell(base, op, 'p50_ms', '8.2f')} {cell(base, op, 'p99_ms', '8.2f')} | "
            f"{(format(ratio, '6.2f') if ratio is not None else '-'):>6}")
    log("(ratio = Palaver req/s / baseline req/s; latencies as reported by wrk --latency)")
    log()

    targets: dict[str, Any] = {}
    valid = not problems
    log("Targets")
    end_ratio = ratios.get("end")
    if end_ratio is not None:
        ok = end_ratio >= TARGET_END_RATIO
        targets["end_ratio"] = {"value": end_ratio, "target": TARGET_END_RATIO, "pass": ok}
        log(f"  end throughput ratio >= {TARGET_END_RATIO:.2f} : {end_ratio:6.2f}     "
            f"{'PASS' if ok else 'FAIL'}")
    else:
        log(f"  end throughput ratio >= {TARGET_END_RATIO:.2f} :    n/a     (needs both runs)")
    if pal and "end" in pal:
        p99 = pal["end"]["p99_ms"]
        ok = p99 < TARGET_END_P99_MS
        targets["end_p99_ms"] = {"value": p99, "target": TARGET_END_P99_MS, "pass": ok}
        log(f"  end p99 < {TARGET_END_P99_MS:.0f} ms             : {p99:6.2f} ms  "
            f"{'PASS' if ok else 'FAIL'}")
    else:
        log(f"  end p99 < {TARGET_END_P99_MS:.0f} ms             :    n/a     (needs the Palaver run)")
    log()

    if valid:
        log("Correctness: every request answered 200, counts verified through the API.")
    else:
        log("Correctness: RUN INVALID -- figures above are not trustworthy:")
        for p in problems:
            log(f"  - {p}")
    log()
    log("wrk command lines ($API_KEY stands for the key used):")
    for line in wrk.command_lines:
        log(f"  {line}")
    log()

    if not valid:
        verdict = "INVALID"
    elif not targets or len(targets) < 2:
        verdict = "INCOMPLETE"
    else:
        verdict = "PASS" if all(t["pass"] for t in targets.values()) else "FAIL"
    log(f"Overall: {verdict}")

    return {
        "verdict": verdict,
        "machine": info,
        "params": {"n": args.n, "connections": args.connections, "threads": args.threads,
                   "warmup": args.warmup, "max_concurrent": args.max_concurrent},
        "palaver": pal,
        "baseline": base,
        "ratios": ratios,
        "targets": targets,
        "problems": problems,
        "wrk_commands": wrk.command_lines,
    }


# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Palaver conversation create/end against a raw ASGI "
                    "baseline on the same uvicorn stack, using wrk.")
    p.add_argument("--n", type=int, default=20000,
                   help="conversations to create and then end (default 20000)")
    p.add_argument("--connections", type=int, default=64,
                   help="concurrent wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--warmup", type=int, default=500,
                   help="uncounted creates+ends before the measured phases "
                        "(default 500, 0 to disable)")
    p.add_argument("--palaver-cmd", type=shlex.split,
                   default=[sys.executable, "-m", "palaver"],
                   help="command that runs the palaver CLI, shell-quoted "
                        "(default: this Python with -m palaver)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="give the benchmark account this concurrent-conversation limit "
                        "(must be >= --n; default: no limit, so the limit check is "
                        "not part of what is measured)")
    p.add_argument("--baseline-python", default=sys.executable,
                   help="Python used to run baseline_app.py (needs uvicorn, uvloop, "
                        "httptools; default: this Python)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="directory for the database, id files and logs (default: a "
                        "temporary directory, removed afterwards unless the run fails)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the figures to this JSON file")
    p.add_argument("--only-baseline", action="store_true",
                   help="only run the baseline app (tests the harness without Palaver)")
    p.add_argument("--skip-baseline", action="store_true",
                   help="only run Palaver (no ratio is computed)")
    p.add_argument("--wrk", default="wrk", help="wrk binary (default: wrk on PATH)")
    p.add_argument("--wrk-time-limit", type=int, default=300,
                   help="upper bound in seconds for a single wrk run (default 300)")
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="seconds to wait for a server to come up (default 60)")
    args = p.parse_args(argv)
    if args.only_baseline and args.skip_baseline:
        p.error("--only-baseline and --skip-baseline exclude each other")
    if args.n < 1 or args.warmup < 0:
        p.error("--n must be >= 1 and --warmup >= 0")
    if args.threads < 1 or args.connections < args.threads:
        p.error("need --threads >= 1 and --connections >= --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    wrk_path = shutil.which(args.wrk)
    if wrk_path is None:
        log(f"error: wrk not found ({args.wrk!r}). Install it with: apt-get install wrk")
        return 2
    args.wrk = wrk_path

    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="palaver-bench-"))
        temporary = True
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        temporary = False

    info = machine_info(args)
    wrk = Wrk(args.wrk, args.threads, args.connections, args.wrk_time_limit, workdir)
    problems: list[str] = []
    pal: dict[str, Any] | None = None
    base: dict[str, Any] | None = None
    started = time.monotonic()
    log(f"workdir {workdir}")
    try:
        if not args.only_baseline:
            pal = {}
            run_palaver(args, wrk, workdir, problems, pal)
        if not args.skip_baseline:
            base = {}
            run_baseline(args, wrk, workdir, problems, base)
    except BenchError as exc:
        problems.append(str(exc))
        log(f"error: {exc}")
    except KeyboardInterrupt:
        problems.append("interrupted")
        log("interrupted")
    log(f"total time {time.monotonic() - started:.1f}s")

    report = print_report(args, info, pal, base, wrk, problems)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        log(f"figures written to {args.json}")

    if problems and temporary:
        log(f"logs and id files kept in {workdir}")
    elif temporary:
        shutil.rmtree(workdir, ignore_errors=True)

    return {"PASS": 0, "FAIL": 1, "INCOMPLETE": 0}.get(report["verdict"], 2)


if __name__ == "__main__":
    sys.exit(main())
