#!/usr/bin/env python3
"""Palaver conversation create/end benchmark.

Measures how fast Palaver creates and ends conversations under concurrent
load, and compares it with two baselines served by the very same stack
(uvicorn, one process, uvloop, httptools, no access log):

* a raw ASGI app (``baseline_app.py``), the floor any Python server on this
  stack can reach; Palaver / raw ASGI is the target of record;
* a minimal Starlette app (``baseline_starlette.py``), for reference only
  (no target): what a plain framework app costs on the same stack.

All servers are started once and stay up for the whole run; the load goes
to one of them at a time.  After one uncounted warm-up per server, each of R
rounds (``--rounds``, default 5) runs create N + end N against every server,
rotating the order of the servers from one round to the next.  The summary
quotes the median over the rounds and the ratios of the medians, and the
targets are judged on those medians.

Load is generated with wrk (``apt-get install wrk``) driven by the Lua scripts
in ``benchmarks/wrk/``, which send *exactly* N requests (wrk itself only knows
time-bounded runs).  See ``benchmarks/README.md``.

Usage::

    /work/venv/bin/python benchmarks/run.py                # full run
    /work/venv/bin/python benchmarks/run.py --n 2000 --rounds 2   # quick check
    /work/venv/bin/python benchmarks/run.py --only-baseline --n 5000
    /work/venv/bin/python benchmarks/run.py --skip-starlette      # no Starlette baseline
    /work/venv/bin/python benchmarks/run.py --webhooks --n 5000 --rounds 3  # webhooks on vs off

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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from collections.abc import Callable
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WRK_DIR = HERE / "wrk"
CREATE_LUA = WRK_DIR / "create.lua"
END_LUA = WRK_DIR / "end.lua"
BASELINE_APP = HERE / "baseline_app.py"
STARLETTE_APP = HERE / "baseline_starlette.py"

LISTEN_RE = re.compile(r"listening on (http://[^\s/]+)")
THREAD_DONE_RE = re.compile(r"^WRK_THREAD_DONE (\d+)\s*$")
WRK_JSON_PREFIX = "WRK_JSON "

TARGET_END_RATIO = 0.5
TARGET_END_P99_MS = 25.0
STARLETTE_NOTE = ("for reference: the issue's scale note quotes a minimal Starlette "
                  "app at ~22k req/s on this machine")

# Servers under test, in start order: short name -> title in the report.
SERVER_TITLES = {"palaver": "Palaver", "baseline": "Raw ASGI baseline",
                 "starlette": "Minimal Starlette"}
# References Palaver's throughput is divided by: the raw ASGI baseline (the
# target of record) and the minimal Starlette app (for reference, no target).
REFERENCES = ("baseline", "starlette")


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
        # Distinct command lines, in order of first use (rounds repeat them).
        self._commands: dict[str, list[str]] = {}

    @property
    def command_lines(self) -> list[str]:
        return [f"[{', '.join(kinds)}] {shown}" for shown, kinds in self._commands.items()]

    def run(self, label: str, script: Path, url: str, key: str,
            script_arg: str | list[str], expected: int | None, kind: str | None = None,
            env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run one wrk load of exactly ``expected`` requests and return figures.

        ``label`` names this run (log and output file); ``kind`` groups runs
        that use the same command line, for the list of commands.  A list as
        ``script_arg`` is the script's whole argument list (otherwise the
        thread count follows it), and ``expected`` None is a load the script
        bounds itself (sustained.py's timed end): every request sent must then
        be answered, however many there were.
        """
        threads = min(self.threads, max(1, expected if expected is not None else self.threads))
        connections = max(self.connections, threads)
        script_args = script_arg if isinstance(script_arg, list) else [script_arg, str(threads)]
        cmd = [
            self.binary, "--latency",
            "-t", str(threads), "-c", str(connections),
            "-d", f"{self.time_limit}s", "--timeout", "10s",
            "-s", str(script),
            "-H", f"x-api-key: {key}",
            url, "--", *script_args,
        ]
        shown = " ".join(shlex.quote(c) for c in cmd).replace(key, "$API_KEY")
        if env:
            shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shown
        kinds = self._commands.setdefault(shown, [])
        if (kind or label) not in kinds:
            kinds.append(kind or label)

        out_lines: list[str] = []
        err_lines: list[str] = []
        done_threads: set[int] = set()
        all_done = threading.Event()

        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True,
                                env=dict(os.environ, **env) if env else None)

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
        if expected is None:
            if received != int(data["sent"]):
                problems.append(f"sent {data['sent']} / received {received} responses: "
                                f"requests went unanswered")
        elif received != expected or int(data["sent"]) != expected:
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
            "expected": expected if expected is not None else received,
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
    return (f"{r['requests']:>6} req {r['elapsed_s']:6.2f}s {r['rps']:7.0f} req/s  "
            f"p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:6.2f}  max {r['max_ms']:6.1f} ms  "
            f"non-200 {r['non_200']}")


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
# Servers under test and rounds


class Target(ABC):
    """A server under test: started once, kept up for the whole run, loaded in
    every round (only one server is loaded at a time), stopped at the end."""

    name = "?"

    def __init__(self, args: argparse.Namespace, wrk: Wrk, workdir: Path,
                 problems: list[str]) -> None:
        self.args = args
        self.wrk = wrk
        self.workdir = workdir
        self.problems = problems
        self.server: Server | None = None
        self.url = ""
        self.key = ""
        self.warmup_results: dict[str, Any] = {}

    def problem(self, msg: str) -> None:
        self.problems.append(f"{self.name}: {msg}")
        log(f"   !! {self.name}: {msg}")

    def check(self, cond: bool, msg: str) -> None:
        if not cond:
            self.problem(msg)

    def load(self, phase: str, script: Path, script_arg: str, expected: int,
             rnd: int | None, env: dict[str, str] | None = None,
             tag: str = "") -> dict[str, Any]:
        """One wrk load against this server; ``rnd`` None means warm-up."""
        where = "warm-up" if rnd is None else f"r{rnd}"
        kind = f"{self.name} {'warm-up ' if rnd is None else ''}{tag}{phase}"
        label = kind if rnd is None else f"{kind} r{rnd}"
        r = self.wrk.run(label, script, self.url, self.key, script_arg, expected,
                         kind=kind, env=env)
        log(f"   {where:<7} {self.name:<9} {phase:<6} {fmt_result(r)}")
        for p in r["problems"]:
            self.problem(f"{where} {phase}: {p}")
        return r

    def ensure_alive(self, when: str) -> None:
        if self.server is not None and not self.server.alive():
            assert self.server.proc is not None
            raise BenchError(f"{self.name} exited {when} "
                             f"({describe_rc(self.server.proc.returncode)}); "
                             f"log {self.server.log_path}:\n{self.server.log_tail()}")

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def warmup(self) -> None: ...

    @abstractmethod
    def run_round(self, rnd: int) -> dict[str, Any]: ...

    def stop(self) -> None:
        if self.server is not None and self.server.proc is not None:
            rc = self.server.stop()
            log(f"   {self.name} stopped ({describe_rc(rc)})")


class PalaverTarget(Target):
    name = "palaver"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.client: httpx.Client | None = None
        self.rounds_done = 0
        self.verify: dict[str, Any] | None = None

    def start(self) -> None:
        args = self.args
        palaver = args.palaver_cmd
        db_path = self.workdir / "palaver-bench.db"
        db_url = f"sqlite:///{db_path}"
        log(f"== Palaver ({' '.join(palaver)})")
        log(f"   database {db_url}")
        keys_cmd = palaver + ["keys", "create", "--database-url", db_url, "--name", "bench"]
        if args.max_concurrent is not None:
            # All N conversations of a round are active at once before its end phase.
            if args.max_concurrent < args.n:
                raise BenchError(f"--max-concurrent {args.max_concurrent} is below --n "
                                 f"{args.n}: the creates would hit the account's limit")
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
        self.key = lines[-1]

        self.server = Server("palaver",
                             palaver + ["serve", "--host", "127.0.0.1", "--port", "0",
                                        "--database-url", db_url, *args.serve_arg],
                             self.workdir / "palaver-server.log",
                             start_timeout=args.start_timeout)
        self.url = self.server.start()
        log(f"   serving at {self.url} (log {self.server.log_path})")
        self.client = httpx.Client(base_url=self.url, headers={"x-api-key": self.key},
                                   timeout=60.0)

    def collect_ids(self, n: int, where: str) -> tuple[list[str], float]:
        """The ids of the ``n`` conversations just created, checked."""
        assert self.client is not None
        t0 = time.monotonic()
        ids, total = list_ids(self.client, "active", n)
        list_s = time.monotonic() - t0
        self.check(len(ids) == n and total == n,
                   f"{where}: after create {len(ids)} active ids listed, "
                   f"total_count {total}, expected {n}")
        self.check(len(set(ids)) == len(ids),
                   f"{where}: list returned {len(ids) - len(set(ids))} duplicate ids")
        self.check(all(re.fullmatch(r"c[0-9a-f]{15}", i) for i in ids),
                   f"{where}: some conversation ids do not look like c + 15 hex")
        return list(dict.fromkeys(ids)), list_s

    def warmup(self) -> None:
        assert self.client is not None
        n = self.args.warmup
        create = self.load("create", CREATE_LUA, str(n), n, None)
        ids, _ = self.collect_ids(n, "warm-up")
        idfile = self.workdir / "palaver-warmup-ids.txt"
        write_ids(idfile, ids)
        end = self.load("end", END_LUA, str(idfile), len(ids), None)
        active = total_count(self.client, "active")
        self.check(active == 0, f"after warm-up end: {active} still active")
        self.warmup_results = {"create": create, "end": end}

    def run_round(self, rnd: int) -> dict[str, Any]:
        assert self.client is not None
        n = self.args.n
        create = self.load("create", CREATE_LUA, str(n), n, rnd)
        ids, list_s = self.collect_ids(n, f"r{rnd}")
        idfile = self.workdir / "palaver-ids.txt"  # same path every round
        write_ids(idfile, ids)
        end = self.load("end", END_LUA, str(idfile), len(ids), rnd)
        active = total_count(self.client, "active")
        ended = total_count(self.client, "ended")
        expected = self.args.warmup + rnd * n
        self.check(active == 0, f"r{rnd}: after end, active total_count {active}, expected 0")
        self.check(ended == expected, f"r{rnd}: after end, ended total_count {ended}, "
                                      f"expected {expected}")
        self.ensure_alive(f"during round {rnd}")
        self.rounds_done = rnd
        return {"create": create, "end": end, "list_s": list_s,
                "active_after": active, "ended_after": ended}

    def final_verify(self) -> None:
        """After all rounds: 0 active, rounds x N + warm-up ended."""
        assert self.client is not None
        active = total_count(self.client, "active")
        ended = total_count(self.client, "ended")
        expected = self.rounds_done * self.args.n + self.args.warmup
        log(f"   palaver afterwards: active total_count {active}, ended total_count "
            f"{ended} (expected 0 and {self.rounds_done} x {self.args.n} + "
            f"{self.args.warmup} warm-up = {expected})")
        self.check(active == 0, f"after all rounds: active total_count {active}, expected 0")
        self.check(ended == expected,
                   f"after all rounds: ended total_count {ended}, expected {expected} "
                   f"({self.rounds_done} x {self.args.n} + {self.args.warmup} warm-up)")
        self.verify = {"active": active, "ended": ended, "expected_ended": expected,
                       "rounds": self.rounds_done}

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        super().stop()


class BaselineTarget(Target):
    """The raw ASGI baseline: checks the key and answers, no storage."""

    name = "baseline"
    app = BASELINE_APP
    description = "raw ASGI"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.rng = random.Random(1234)

    def start(self) -> None:
        self.key = secrets.token_urlsafe(24)
        env = dict(os.environ, BASELINE_API_KEY=self.key)
        cmd = [self.args.baseline_python, str(self.app),
               "--host", "127.0.0.1", "--port", "0"]
        log(f"== {SERVER_TITLES[self.name]} ({self.description}, {self.app.name})")
        self.server = Server(self.name, cmd, self.workdir / f"{self.name}-server.log",
                             env=env, start_timeout=self.args.start_timeout)
        self.url = self.server.start()
        log(f"   serving at {self.url}")

    def warmup(self) -> None:
        n = self.args.warmup
        create = self.load("create", CREATE_LUA, str(n), n, None)
        idfile = self.workdir / f"{self.name}-warmup-ids.txt"
        write_ids(idfile, fake_ids(n, self.rng))
        end = self.load("end", END_LUA, str(idfile), n, None)
        self.warmup_results = {"create": create, "end": end}

    def run_round(self, rnd: int) -> dict[str, Any]:
        n = self.args.n
        create = self.load("create", CREATE_LUA, str(n), n, rnd)
        idfile = self.workdir / f"{self.name}-ids.txt"  # same path every round
        write_ids(idfile, fake_ids(n, self.rng))
        end = self.load("end", END_LUA, str(idfile), n, rnd)
        self.ensure_alive(f"during round {rnd}")
        return {"create": create, "end": end}


class StarletteTarget(BaselineTarget):
    """The minimal Starlette app: same routes and key check, plain Starlette."""

    name = "starlette"
    app = STARLETTE_APP
    description = "plain Starlette app, reference only"


PHASES = ("create", "end")


def round_ratios(entry: dict[str, Any], ref: str) -> dict[str, float | None]:
    """Palaver req/s / ``ref`` req/s within one round, per phase."""
    out: dict[str, float | None] = {}
    for op in PHASES:
        out[op] = None
        if "palaver" in entry and ref in entry:
            ref_rps = entry[ref][op]["rps"]
            if ref_rps > 0:
                out[op] = entry["palaver"][op]["rps"] / ref_rps
    return out


def run_rounds(args: argparse.Namespace, targets: list[Target],
               rounds: list[dict[str, Any]], problems: list[str]) -> None:
    if args.warmup:
        log(f"== Warm-up: {args.warmup} creates + ends per server (not counted)")
        for t in targets:
            t.warmup()
            t.ensure_alive("during the warm-up")
        if problems:
            log("   stopping: the warm-up had problems")
            return
    for rnd in range(1, args.rounds + 1):
        # Rotate the order of the servers (with two: alternate which goes
        # first), so that drift (thermal, other load on the box) does not
        # always favour the same one.
        k = (rnd - 1) % len(targets)
        order = targets[k:] + targets[:k]
        log(f"== Round {rnd}/{args.rounds} ({', then '.join(t.name for t in order)})")
        before = len(problems)
        entry: dict[str, Any] = {"round": rnd, "order": [t.name for t in order]}
        for t in order:
            entry[t.name] = t.run_round(rnd)
        entry["ratios"] = round_ratios(entry, "baseline")
        entry["ratios_starlette"] = round_ratios(entry, "starlette")
        rounds.append(entry)
        if len(problems) > before:
            log("   stopping after this round: it had problems")
            break


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
        "starlette": version("starlette"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "wrk": wrk_version,
        "palaver_commit": commit,
    }


def median_figures(rounds: list[dict[str, Any]], server: str,
                   op: str) -> dict[str, float] | None:
    runs = [r[server][op] for r in rounds if server in r]
    if not runs:
        return None
    return {key: statistics.median(x[key] for x in runs)
            for key in ("rps", "p50_ms", "p99_ms")}


def min_med_max(values: list[float | None]) -> dict[str, Any] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals),
            "values": vals}


def print_report(args: argparse.Namespace, info: dict[str, Any],
                 targets: list[Target], rounds: list[dict[str, Any]],
                 verify: dict[str, Any] | None, wrk: Wrk,
                 problems: list[str]) -> dict[str, Any]:
    servers = [t.name for t in targets]
    log()
    log("=" * 78)
    log("Palaver benchmark: conversation create / end")
    log("=" * 78)
    log(f"Machine : {info['nproc']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}")
    log(f"          Linux {info['kernel']}; wrk and the server share these CPUs")
    log(f"Software: Python {info['python']}, uvicorn {info['uvicorn']}, "
        f"uvloop {info['uvloop']}, httptools {info['httptools']}, "
        f"Starlette {info['starlette']}, {info['wrk']}")
    log(f"Palaver : commit {info['palaver_commit']}")
    log(f"Load    : N={args.n} conversations per phase, {args.connections} connections, "
        f"{args.threads} wrk threads")
    log(f"Servers : {', '.join(SERVER_TITLES[s] for s in servers)}; all up the whole "
        f"run, one loaded at a time")
    log(f"Rounds  : {len(rounds)} of {args.rounds} completed, order of the servers rotated "
        f"every round;")
    log(f"          warm-up {args.warmup} creates+ends per server (not counted)")
    log()

    def fmt_ratio(value: float | None, width: int) -> str:
        return format(value, f"{width}.2f") if value is not None else f"{'-':>{width}}"

    # References in this run that Palaver's throughput can be divided by.
    refs = [ref for ref in REFERENCES if ref in servers and "palaver" in servers]
    ref_short = {"baseline": "raw", "starlette": "Starl."}
    ref_label = {"baseline": "raw ASGI", "starlette": "minimal Starlette"}
    ratio_key = {"baseline": "ratios", "starlette": "ratios_starlette"}

    # Per-round figures, one line per round: a column group per server.
    cw = 13  # one cell: "req/s p99"
    gw = 2 * cw + 3
    rw = 7 * len(refs)
    log("Per round: req/s and p99 ms")
    log((f"{'':16}| " + " | ".join(f"{SERVER_TITLES[s]:^{gw}}" for s in servers)
         + (f" | {'end ratio':^{rw}}" if refs else "")).rstrip())
    log((f"{'round':>5} {'first':<10}| "
         + " | ".join(f"{'create':^{cw}} | {'end':^{cw}}" for _ in servers)
         + (" | " + " ".join(f"{ref_short[r]:>6}" for r in refs) if refs else "")).rstrip())
    for entry in rounds:
        cells = []
        for s in servers:
            for op in PHASES:
                if s in entry:
                    r = entry[s][op]
                    cells.append(f"{r['rps']:6.0f} {r['p99_ms']:6.2f}")
                else:
                    cells.append(f"{'-':^{cw}}")
        line = f"{entry['round']:>5} {entry['order'][0]:<10}| " + " | ".join(cells)
        if refs:
            line += " | " + " ".join(fmt_ratio(entry[ratio_key[r]]["end"], 6)
                                     for r in refs)
        log(line)
    if refs:
        log("(end ratio = Palaver end req/s / that server's end req/s in the same round; "
            + ", ".join(f"{ref_short[r]} = {ref_label[r]}" for r in refs) + ")")
    log()

    # Medians over the rounds.
    med = {s: {op: median_figures(rounds, s, op) for op in PHASES} for s in servers}

    def cell(s: str, op: str, key: str, fmt: str) -> str:
        m = med[s][op]
        return format(m[key], fmt) if m else f"{'-':>8}"

    ratios_vs: dict[str, dict[str, float | None]] = {}
    for ref in REFERENCES:
        ratios_vs[ref] = {}
        for op in PHASES:
            pm = med.get("palaver", {}).get(op)
            rm = med.get(ref, {}).get(op)
            ratios_vs[ref][op] = (pm["rps"] / rm["rps"]
                                  if pm and rm and rm["rps"] > 0 else None)
    ratios = ratios_vs["baseline"]

    log(f"Median of {len(rounds)} round{'s' if len(rounds) != 1 else ''}")
    hdr = f"{'':8}| " + " | ".join(f"{SERVER_TITLES[s]:^26}" for s in servers)
    sub = f"{'':8}| " + " | ".join(f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
                                   for _ in servers)
    if refs:
        hdr += f" | {'Palaver /':^{rw - 1}}"
        sub += " | " + " ".join(f"{ref_short[r]:>6}" for r in refs)
    log(hdr.rstrip())
    log(sub)
    log("-" * len(sub))
    for op in PHASES:
        line = f"{op:8}| " + " | ".join(
            f"{cell(s, op, 'rps', '8.0f')} {cell(s, op, 'p50_ms', '8.2f')} "
            f"{cell(s, op, 'p99_ms', '8.2f')}" for s in servers)
        if refs:
            line += " | " + " ".join(fmt_ratio(ratios_vs[r][op], 6) for r in refs)
        log(line)
    if refs:
        log("(each figure is the median over the rounds; Palaver / X = median Palaver req/s /")
        log(" median req/s of X; latencies as reported by wrk --latency)")
    else:
        log("(each figure is the median over the rounds; latencies as reported by "
            "wrk --latency)")
    per_round_vs = {ref: {op: min_med_max([e[ratio_key[ref]][op] for e in rounds])
                          for op in PHASES}
                    for ref in REFERENCES}
    per_round = per_round_vs["baseline"]
    for ref in refs:
        pr = per_round_vs[ref]["end"]
        if pr:
            log(f"end ratio per round, Palaver / {ref_label[ref]:<17}: "
                f"min {pr['min']:.2f}, median {pr['median']:.2f}, max {pr['max']:.2f}")
    log()

    # The two end ratios on the medians: raw ASGI is the target of record,
    # Starlette is printed for reference only.
    if "palaver" in servers and refs:
        log("End throughput ratios (on the medians)")
        if "baseline" in refs:
            log(f"  Palaver / raw ASGI baseline : {fmt_ratio(ratios_vs['baseline']['end'], 6)}"
                f"  target of record, judged below (>= {TARGET_END_RATIO:.2f})")
        if "starlette" in refs:
            log(f"  Palaver / minimal Starlette : {fmt_ratio(ratios_vs['starlette']['end'], 6)}"
                f"  no target")
            log(f"      {STARLETTE_NOTE}")
            sm = med["starlette"]
            if sm["create"] and sm["end"]:
                log(f"      (this run's minimal Starlette medians: create "
                    f"{sm['create']['rps']:.0f} req/s, end {sm['end']['rps']:.0f} req/s)")
        log()

    targets_out: dict[str, Any] = {}
    log("Targets (on the medians)")
    end_ratio = ratios.get("end")
    if end_ratio is not None:
        ok = end_ratio >= TARGET_END_RATIO
        targets_out["end_ratio"] = {"value": end_ratio, "target": TARGET_END_RATIO,
                                    "reference": "baseline", "pass": ok}
        log(f"  end ratio Palaver / raw ASGI >= {TARGET_END_RATIO:.2f} : {end_ratio:6.2f}     "
            f"{'PASS' if ok else 'FAIL'}")
    else:
        log(f"  end ratio Palaver / raw ASGI >= {TARGET_END_RATIO:.2f} :    n/a     "
            f"(needs Palaver and the raw ASGI baseline)")
    if "palaver" in med and med["palaver"]["end"]:
        p99 = med["palaver"]["end"]["p99_ms"]
        ok = p99 < TARGET_END_P99_MS
        targets_out["end_p99_ms"] = {"value": p99, "target": TARGET_END_P99_MS, "pass": ok}
        log(f"  Palaver end p99 < {TARGET_END_P99_MS:.0f} ms              : {p99:6.2f} ms  "
            f"{'PASS' if ok else 'FAIL'}")
    else:
        log(f"  Palaver end p99 < {TARGET_END_P99_MS:.0f} ms              :    n/a     "
            f"(needs Palaver)")
    log()

    verdict = close_report(problems, wrk, targets_out, (
        [f"Afterwards {verify['active']} active, {verify['ended']} "
         f"ended = {verify['rounds']} rounds x {args.n} + {args.warmup} warm-up."] if verify else []))

    return {
        "verdict": verdict,
        "machine": info,
        "params": {"n": args.n, "rounds": args.rounds, "connections": args.connections,
                   "threads": args.threads, "warmup": args.warmup,
                   "max_concurrent": args.max_concurrent},
        "servers": servers,
        "rounds_completed": len(rounds),
        "warmup": {t.name: t.warmup_results for t in targets},
        "rounds": rounds,
        "median": {s: med[s] for s in servers},
        # Palaver / raw ASGI baseline (target of record) ...
        "ratios": ratios,
        "ratios_per_round": per_round,
        # ... and Palaver / minimal Starlette (reference only, no target).
        "ratios_starlette": ratios_vs["starlette"],
        "ratios_starlette_per_round": per_round_vs["starlette"],
        "starlette_note": STARLETTE_NOTE,
        "verify": verify,
        "targets": targets_out,
        "problems": problems,
        "wrk_commands": wrk.command_lines,
    }


# ---------------------------------------------------------------------------
# Webhooks mode (--webhooks): end throughput with webhooks on vs off, and the
# delivery delay from an end's 200 to its system.shutdown at the receiver.

RECEIVER_APP = HERE / "receiver.py"
TARGET_WEBHOOK_COST = 0.20      # 1 - end req/s (on) / end req/s (off) must be below this
TARGET_DELIVERY_P99_S = 1.0     # p99 of (system.shutdown arrival - ended_at)
CREATE_BODY_ENV = "PALAVER_BENCH_CREATE_BODY"


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat), or None."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Share of all CPUs' time that was busy between two `machine_ticks` readings."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def delivery_children(pid: int | None) -> list[int]:
    """The `palaver deliver` processes `palaver serve` started (Linux /proc)."""
    found: list[int] = []
    if pid is None:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == pid and b"deliver" in cmdline:
            found.append(int(entry.name))
    return found


def parse_ended_at(value: str) -> float:
    from datetime import datetime, timezone
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def log_timeline(where: str, ends: list[float], arrivals: list[float], step: float = 0.1) -> None:
    """Ends committed and shutdowns arrived per `step` seconds from the first end: stalls of
    the delivery worker show as bins with few arrivals while a backlog remains."""
    t0 = min(ends)
    bins = int((max(max(ends), *arrivals) - t0) / step) + 1
    count_ends, count_arrived = [0] * bins, [0] * bins
    for t in ends:
        count_ends[int((t - t0) / step)] += 1
    for t in arrivals:
        count_arrived[max(0, int((t - t0) / step))] += 1
    log(f"   {where:<7} timeline, per {step * 1000:.0f} ms from the first end (ends / shutdowns arrived):")
    for row in range(0, bins, 6):
        log("      " + "  ".join(f"{i * step:4.1f}s {count_ends[i]:5d}/{count_arrived[i]:5d}"
                                  for i in range(row, min(row + 6, bins))))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


class WebhookBench:
    def __init__(self, args: argparse.Namespace, wrk: Wrk, workdir: Path,
                 problems: list[str]) -> None:
        self.args = args
        self.workdir = workdir
        self.problems = problems
        if "--allow-private-callbacks" not in args.serve_arg:
            args.serve_arg = [*args.serve_arg, "--allow-private-callbacks"]
        self.pal = PalaverTarget(args, wrk, workdir, problems)
        self.receiver: Server | None = None
        self.rcv: httpx.Client | None = None
        self.hook_url = ""
        self.db_path = workdir / "palaver-bench.db"
        self.ended_total = 0
        self.shutdowns_expected = 0
        self.joined_expected = 0

    def start(self) -> None:
        log(f"== Webhook receiver ({RECEIVER_APP.name}, {self.args.receiver_stack} stack)")
        self.receiver = Server("receiver", [self.args.baseline_python, str(RECEIVER_APP),
                                            "--host", "127.0.0.1", "--port", "0",
                                            "--stack", self.args.receiver_stack],
                               self.workdir / "receiver.log",
                               start_timeout=self.args.start_timeout)
        url = self.receiver.start()
        self.hook_url = url + "/hook"
        self.rcv = httpx.Client(base_url=url, timeout=60.0)
        log(f"   receiving at {self.hook_url}")
        self.pal.start()

    def stop(self) -> None:
        if self.rcv is not None:
            self.rcv.close()
        self.pal.stop()
        if self.receiver is not None:
            rc = self.receiver.stop()
            log(f"   receiver stopped ({describe_rc(rc)})")

    def body(self) -> str:
        return json.dumps({"replica_id": "r90bbd427f71", "persona_id": "pcb7a34da5fe",
                           "conversation_name": "bench", "callback_url": self.hook_url},
                          separators=(",", ":"))

    def counts(self) -> dict[str, Any]:
        assert self.rcv is not None
        return self.rcv.get("/counts").json()

    def wait_event(self, event: str, expected: int, where: str) -> tuple[float, int]:
        """Wait (bounded) until the receiver has ``expected`` distinct ``event``s.

        Returns (seconds waited, how many were still missing)."""
        t0 = time.monotonic()
        deadline = t0 + self.args.webhook_wait
        while True:
            got = self.counts()["by_event"].get(event, 0)
            if got >= expected:
                return time.monotonic() - t0, 0
            if time.monotonic() > deadline:
                log(f"   !! {where}: gave up after {self.args.webhook_wait:.0f}s waiting "
                    f"for {event}: {expected - got} of them not arrived")
                return time.monotonic() - t0, expected - got
            self.pal.ensure_alive(f"while waiting for {event}")
            time.sleep(0.2)

    def ended_at(self, ids: list[str]) -> dict[str, float]:
        import sqlite3
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT conversation_id, ended_at FROM conversations "
                               "WHERE ended_at IS NOT NULL").fetchall()
        finally:
            con.close()
        want = set(ids)
        return {cid: parse_ended_at(ts) for cid, ts in rows if cid in want}

    def one(self, mode: str, n: int, rnd: int | None) -> dict[str, Any]:
        """Create n + end n with webhooks ``mode`` ("off" / "on")."""
        pal = self.pal
        where = "warm-up" if rnd is None else f"r{rnd}"
        on = mode == "on"
        env = {CREATE_BODY_ENV: self.body()} if on else None
        create = pal.load("create", CREATE_LUA, str(n), n, rnd, env=env, tag=f"{mode} ")
        ids, _ = pal.collect_ids(n, f"{where} {mode}")
        out: dict[str, Any] = {"create": create}
        if on:
            # Let the create's replica_joined deliveries drain first, so that
            # the end phase measures the cost of the end's own webhooks.
            self.joined_expected += len(ids)
            waited, missing = self.wait_event("system.replica_joined", self.joined_expected,
                                              f"{where} on")
            out["joined_drain_s"] = waited
            out["joined_missing"] = missing
            log(f"   {where:<7} palaver   on     replica_joined drained {waited:.2f}s "
                f"after create+list" + (f", {missing} missing" if missing else ""))
        idfile = self.workdir / f"palaver-{mode}-ids.txt"
        write_ids(idfile, ids)
        server_pid = pal.server.proc.pid if pal.server and pal.server.proc else None
        receiver_pid = self.receiver.proc.pid if self.receiver and self.receiver.proc else None
        workers = delivery_children(server_pid)
        pids: dict[str, list[int]] = {"server": [server_pid] if server_pid else [], "worker": workers,
                                      "receiver": [receiver_pid] if receiver_pid else []}

        def cpu_of(group: list[int]) -> float | None:
            times = [cpu_seconds(p) for p in group]
            return None if not group or None in times else sum(t for t in times if t is not None)

        cpu_before = {k: cpu_of(v) for k, v in pids.items()}
        pace = None
        if self.args.end_rate:
            pace = {"PALAVER_BENCH_DELAY_MS": str(max(1, round(self.args.connections * 1000 / self.args.end_rate)))}
        ticks_before = machine_ticks()
        end = pal.load("end", END_LUA, str(idfile), len(ids), rnd, tag=f"{mode} ", env=pace)
        wrk_done = time.time()
        busy = busy_share(ticks_before, machine_ticks())
        out["end"] = end
        if busy is not None:
            # How much CPU was left over while the ends ran: with webhooks off at full
            # speed, none means that any delivery during the ends is CPU taken from them.
            out["machine_busy"] = busy
            log(f"   {where:<7} palaver   {mode:<6} machine busy during the end phase: {busy:.0%} "
                f"of {os.cpu_count()} CPUs (wrk, server, workers, receiver, everything else)")
        self.ended_total += len(ids)
        assert pal.client is not None
        active = total_count(pal.client, "active")
        pal.check(active == 0, f"{where} {mode}: after end {active} still active")
        if on:
            self.shutdowns_expected += len(ids)
            waited, missing = self.wait_event("system.shutdown", self.shutdowns_expected,
                                              f"{where} on")
            assert self.rcv is not None
            first = self.rcv.get("/stats").json()
            ended = self.ended_at(ids)
            pal.check(len(ended) == len(ids),
                      f"{where} on: ended_at found for {len(ended)} of {len(ids)}")
            delays = []
            arrivals = []
            for cid, t_end in ended.items():
                t = first.get(f"{cid}.system.shutdown")
                if t is not None:
                    delays.append(t - t_end)
                    arrivals.append(t)
            last_end = max(ended.values()) if ended else wrk_done
            if self.args.timeline and ended:
                log_timeline(where, list(ended.values()), arrivals)
            d: dict[str, Any] = {"arrived": len(delays), "expected": len(ids),
                                 "missing": len(ids) - len(delays), "waited_s": waited}
            if delays:
                d.update(p50_s=pct(delays, 50), p99_s=pct(delays, 99),
                         max_s=max(delays), min_s=min(delays),
                         drain_after_last_end_s=max(arrivals) - last_end)
                log(f"   {where:<7} palaver   on     system.shutdown: "
                    f"{len(delays)}/{len(ids)} arrived, delay p50 {d['p50_s']*1000:.0f} ms "
                    f"p99 {d['p99_s']*1000:.0f} ms max {d['max_s']*1000:.0f} ms; "
                    f"backlog drained {d['drain_after_last_end_s']:.2f}s after the last end")
            else:
                log(f"   {where:<7} palaver   on     system.shutdown: none arrived")
            out["delivery"] = d
            # The transcripts go out after the shutdowns: let them drain too, so
            # that the next phase does not share the machine with this one's backlog.
            waited, missing = self.wait_event("application.transcription_ready",
                                              self.shutdowns_expected, f"{where} on")
            d["transcripts_drained_s"] = waited
            d["transcripts_missing"] = missing
            # Where the CPU went, from the end phase's start until every shutdown and
            # transcript arrived: per end for the server, per webhook for the others.
            cpu = {}
            for k, group in pids.items():
                after, before = cpu_of(group), cpu_before[k]
                if after is not None and before is not None:
                    cpu[k] = after - before
            webhooks = 2 * len(ids)
            d["cpu_s"] = cpu
            if cpu:
                log(f"   {where:<7} palaver   on     CPU from the ends until all {webhooks} webhooks arrived "
                    f"({len(workers)} delivery worker{'s' if len(workers) != 1 else ''}): "
                    + ", ".join(f"{k} {v:.2f}s" for k, v in cpu.items())
                    + (f"; per webhook: worker {cpu['worker'] / webhooks * 1e6:.0f} us" if "worker" in cpu else "")
                    + (f", receiver {cpu['receiver'] / webhooks * 1e6:.0f} us" if "receiver" in cpu else ""))
        pal.ensure_alive(f"during {where} {mode}")
        return out

    def run(self, results: dict[str, Any]) -> None:
        args = self.args
        if args.warmup:
            log(f"== Warm-up: {args.warmup} creates + ends, webhooks off then on "
                f"(not counted)")
            results["warmup"] = {m: self.one(m, args.warmup, None) for m in ("off", "on")}
            if self.problems:
                log("   stopping: the warm-up had problems")
                return
        for rnd in range(1, args.rounds + 1):
            order = ("off", "on") if rnd % 2 else ("on", "off")
            log(f"== Round {rnd}/{args.rounds} (webhooks {order[0]}, then {order[1]})")
            before = len(self.problems)
            entry: dict[str, Any] = {"round": rnd, "order": list(order)}
            for m in order:
                entry[m] = self.one(m, args.n, rnd)
            results["rounds"].append(entry)
            if len(self.problems) > before:
                log("   stopping after this round: it had problems")
                break


def webhook_report(args: argparse.Namespace, info: dict[str, Any],
                   results: dict[str, Any], wrk: Wrk, problems: list[str]) -> dict[str, Any]:
    rounds = results["rounds"]
    log()
    log("=" * 78)
    log("Palaver benchmark: end with webhooks off vs on, and webhook delivery delay")
    log("=" * 78)
    log(f"Machine : {info['nproc']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}")
    log(f"          Linux {info['kernel']}; wrk, Palaver and the receiver share these CPUs")
    log(f"Software: Python {info['python']}, uvicorn {info['uvicorn']}, "
        f"uvloop {info['uvloop']}, httptools {info['httptools']}, {info['wrk']}")
    log(f"Palaver : commit {info['palaver_commit']}, one server for both modes, "
        f"serve args: {' '.join(args.serve_arg)}")
    log(f"Load    : N={args.n} conversations per phase, {args.connections} connections, "
        f"{args.threads} wrk threads"
        + (f"; end phases paced at ~{args.end_rate:.0f}/s (--end-rate)" if args.end_rate else ""))
    log(f"Rounds  : {len(rounds)} of {args.rounds} completed; each round = webhooks off "
        f"and webhooks on, order alternated")
    log(f"          warm-up {args.warmup} creates+ends per mode (not counted)")
    log("Webhooks: 'on' conversations are created with callback_url = a local receiver "
        "(receiver.py,")
    log(f"          {args.receiver_stack} stack, answers 200 at once). Before the end phase the "
        "create's")
    log("          replica_joined deliveries are waited for, so 'end on' carries only "
        "the end's webhooks.")
    log("Delay   : system.shutdown arrival at the receiver (time.time()) minus the "
        "conversation's")
    log("          ended_at in the database, which is committed just before the end's "
        "200; it stands")
    log("          in for the time of the 200.  Drain = last shutdown arrival - last "
        "ended_at.")
    log()
    log("Per round: end req/s, p50 and p99 ms; delivery of system.shutdown")
    log(f"{'round':>5} {'first':<5}| {'end, webhooks off':^24} | {'end, webhooks on':^24} | "
        f"{'cost':>6} | {'delay p50':>9} {'p99':>8} {'max':>8} {'drain':>8} {'missing':>7}")
    for e in rounds:
        off, on = e["off"]["end"], e["on"]["end"]
        d = e["on"]["delivery"]
        cost = 1 - on["rps"] / off["rps"] if off["rps"] else float("nan")
        if d.get("arrived"):
            dl = (f"{d['p50_s']*1000:7.0f}ms {d['p99_s']*1000:6.0f}ms {d['max_s']*1000:6.0f}ms "
                  f"{d['drain_after_last_end_s']:7.2f}s")
        else:
            dl = f"{'-':>9} {'-':>8} {'-':>8} {'-':>8}"
        log(f"{e['round']:>5} {e['order'][0]:<5}| {off['rps']:7.0f} {off['p50_ms']:7.2f} "
            f"{off['p99_ms']:7.2f} | {on['rps']:7.0f} {on['p50_ms']:7.2f} {on['p99_ms']:7.2f} | "
            f"{cost:6.1%} | {dl} {d['missing']:>7}")
    log("(cost = 1 - end req/s on / end req/s off in that round; replica_joined drain "
        "before the end phase, s: "
        + ", ".join(f"{e['on'].get('joined_drain_s', 0):.1f}" for e in rounds) + ")")
    log()

    targets: dict[str, Any] = {}
    med: dict[str, Any] = {}
    if rounds:
        for m in ("off", "on"):
            med[m] = {k: statistics.median(e[m]["end"][k] for e in rounds)
                      for k in ("rps", "p50_ms", "p99_ms")}
        dels = [e["on"]["delivery"] for e in rounds if e["on"]["delivery"].get("arrived")]
        if dels:
            med["delivery"] = {k: statistics.median(d[k] for d in dels)
                               for k in ("p50_s", "p99_s", "max_s",
                                         "drain_after_last_end_s")}
        med["missing_total"] = sum(e["on"]["delivery"]["missing"] for e in rounds)
        log(f"Median of {len(rounds)} round{'s' if len(rounds) != 1 else ''}")
        log(f"  end, webhooks off : {med['off']['rps']:7.0f} req/s  p50 "
            f"{med['off']['p50_ms']:6.2f} ms  p99 {med['off']['p99_ms']:6.2f} ms")
        log(f"  end, webhooks on  : {med['on']['rps']:7.0f} req/s  p50 "
            f"{med['on']['p50_ms']:6.2f} ms  p99 {med['on']['p99_ms']:6.2f} ms")
        cost = 1 - med["on"]["rps"] / med["off"]["rps"] if med["off"]["rps"] else None
        if "delivery" in med:
            md = med["delivery"]
            log(f"  shutdown delivery : p50 {md['p50_s']*1000:.0f} ms  p99 "
                f"{md['p99_s']*1000:.0f} ms  max {md['max_s']*1000:.0f} ms  "
                f"backlog drained {md['drain_after_last_end_s']:.2f} s after the last end")
        log(f"  shutdowns not arrived when the wait ({args.webhook_wait:.0f}s) ended, all "
            f"rounds: {med['missing_total']}")
        log()
        log("Targets (on the medians)")
        if cost is not None:
            ok = cost < TARGET_WEBHOOK_COST
            targets["webhook_cost"] = {"value": cost, "target": TARGET_WEBHOOK_COST,
                                       "pass": ok}
            log(f"  end throughput cost of webhooks < {TARGET_WEBHOOK_COST:.0%} : "
                f"{cost:7.1%}   {'PASS' if ok else 'FAIL'}")
        if "delivery" in med:
            p99 = med["delivery"]["p99_s"]
            ok = p99 < TARGET_DELIVERY_P99_S and med["missing_total"] == 0
            targets["delivery_p99_s"] = {"value": p99, "target": TARGET_DELIVERY_P99_S,
                                         "missing": med["missing_total"], "pass": ok}
            log(f"  shutdown delivery p99 < {TARGET_DELIVERY_P99_S:.0f} s          : "
                f"{p99:7.3f} s {'PASS' if ok else 'FAIL'}"
                + ("  (and some never arrived)" if med["missing_total"] else ""))
        log()
    verdict = close_report(problems, wrk, targets, [])
    return {"verdict": verdict, "machine": info, "mode": "webhooks",
            "params": {"n": args.n, "rounds": args.rounds, "connections": args.connections,
                       "threads": args.threads, "warmup": args.warmup,
                       "webhook_wait": args.webhook_wait},
            "rounds": rounds, "warmup": results.get("warmup"), "median": med,
            "targets": targets, "problems": problems, "wrk_commands": wrk.command_lines}


def webhook_main(args: argparse.Namespace, wrk: Wrk, workdir: Path,
                 info: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"rounds": []}
    bench = WebhookBench(args, wrk, workdir, problems)

    def work() -> None:
        bench.start()
        bench.run(results)

    run_guarded(work, bench.stop, problems)
    return webhook_report(args, info, results, wrk, problems)


def run_guarded(work: Callable[[], None], stop: Callable[[], None], problems: list[str]) -> None:
    """Run a benchmark body, always stopping its servers; a failure becomes a problem in the report."""
    started = time.monotonic()
    try:
        try:
            work()
        finally:
            log("== Stopping servers")
            stop()
    except BenchError as exc:
        problems.append(str(exc))
        log(f"error: {exc}")
    except httpx.HTTPError as exc:
        problems.append(f"API request failed: {exc!r}")
        log(f"error: API request failed: {exc!r}")
    except KeyboardInterrupt:
        problems.append("interrupted")
        log("interrupted")
    log(f"total time {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark Palaver conversation create/end against a raw ASGI "
                    "baseline (target of record) and a minimal Starlette app "
                    "(reference) on the same uvicorn stack, using wrk.")
    p.add_argument("--n", type=int, default=20000,
                   help="conversations to create and then end, per server and round "
                        "(default 20000)")
    p.add_argument("--rounds", type=int, default=5,
                   help="measured rounds; the summary quotes the medians over them "
                        "(default 5)")
    p.add_argument("--connections", type=int, default=64,
                   help="concurrent wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--warmup", type=int, default=500,
                   help="uncounted creates+ends per server before the first round "
                        "(default 500, 0 to disable)")
    p.add_argument("--palaver-cmd", type=shlex.split,
                   default=[sys.executable, "-m", "palaver"],
                   help="command that runs the palaver CLI, shell-quoted "
                        "(default: this Python with -m palaver)")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `palaver serve`, repeatable "
                        "(e.g. --serve-arg=--sqlite-synchronous=FULL)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="give the benchmark account this concurrent-conversation limit "
                        "(must be >= --n; default: no limit, so the limit check is "
                        "not part of what is measured)")
    p.add_argument("--baseline-python", default=sys.executable,
                   help="Python used to run baseline_app.py and baseline_starlette.py "
                        "(needs uvicorn, uvloop, httptools and starlette; default: "
                        "this Python)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="directory for the database, id files and logs (default: a "
                        "temporary directory, removed afterwards unless the run fails)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the figures to this JSON file")
    p.add_argument("--only-baseline", action="store_true",
                   help="do not run Palaver, only the baseline apps (tests the harness "
                        "without Palaver)")
    p.add_argument("--skip-baseline", action="store_true",
                   help="do not run the raw ASGI baseline (no target ratio; with "
                        "--skip-starlette too, only Palaver runs)")
    p.add_argument("--skip-starlette", action="store_true",
                   help="do not run the minimal Starlette baseline (no reference ratio)")
    p.add_argument("--webhooks", action="store_true",
                   help="webhooks mode: Palaver only, one server with "
                        "--allow-private-callbacks; every round ends N conversations "
                        "with webhooks off and N with a local receiver as callback_url, "
                        "and measures the system.shutdown delivery delay")
    p.add_argument("--receiver-stack", choices=("raw", "asgi"), default="raw",
                   help="the webhook receiver's stack: raw (asyncio protocol + httptools, the "
                        "default) or asgi (uvicorn, as before 2026-11-25); see receiver.py")
    p.add_argument("--end-rate", type=float, default=None,
                   help="webhooks mode: pace the end phases at about this many ends/s "
                        "(each connection waits connections/rate between requests) instead "
                        "of as fast as the server answers: the delivery delay at a steady load")
    p.add_argument("--timeline", action="store_true",
                   help="webhooks mode: log, per 100 ms of each 'on' end phase, how many ends "
                        "committed and how many system.shutdowns arrived")
    p.add_argument("--webhook-wait", type=float, default=120.0,
                   help="webhooks mode: at most this many seconds to wait for the "
                        "deliveries of a phase to arrive (default 120)")
    p.add_argument("--wrk", default="wrk", help="wrk binary (default: wrk on PATH)")
    p.add_argument("--wrk-time-limit", type=int, default=300,
                   help="upper bound in seconds for a single wrk run (default 300)")
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="seconds to wait for a server to come up (default 60)")
    args = p.parse_args(argv)
    if args.only_baseline and args.skip_baseline and args.skip_starlette:
        p.error("--only-baseline, --skip-baseline and --skip-starlette together "
                "leave no server to run")
    if args.n < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("need --n >= 1, --rounds >= 1 and --warmup >= 0")
    if args.threads < 1 or args.connections < args.threads:
        p.error("need --threads >= 1 and --connections >= --threads")
    return args



def close_report(problems: list[str], wrk: Any, targets: dict[str, Any], verified: list[str]) -> str:
    """The closing lines every mode prints (correctness, wrk command lines, verdict); returns the verdict."""
    if not problems:
        log("Correctness: every request answered 200, counts verified through the API.")
        for line in verified:
            log(f"             {line}")
    else:
        log("Correctness: RUN INVALID -- figures above are not trustworthy:")
        for p in problems:
            log(f"  - {p}")
    log()
    log("wrk command lines ($API_KEY stands for the key used; the same in every round):")
    for line in wrk.command_lines:
        log(f"  {line}")
    log()
    if problems:
        verdict = "INVALID"
    elif len(targets) < 2:
        verdict = "INCOMPLETE"
    else:
        verdict = "PASS" if all(t["pass"] for t in targets.values()) else "FAIL"
    log(f"Overall: {verdict}")
    return verdict


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
    if args.webhooks:
        log(f"workdir {workdir}")
        report = webhook_main(args, wrk, workdir, info, problems)
        return finish(args, report, problems, workdir, temporary)
    targets: list[Target] = []
    rounds: list[dict[str, Any]] = []
    pal: PalaverTarget | None = None
    log(f"workdir {workdir}")

    def work() -> None:
        nonlocal pal
        # All servers are started up front and stay up for the whole run.
        if not args.only_baseline:
            pal = PalaverTarget(args, wrk, workdir, problems)
            targets.append(pal)
            pal.start()
        if not args.skip_baseline:
            base = BaselineTarget(args, wrk, workdir, problems)
            targets.append(base)
            base.start()
        if not args.skip_starlette:
            star = StarletteTarget(args, wrk, workdir, problems)
            targets.append(star)
            star.start()
        run_rounds(args, targets, rounds, problems)
        if pal is not None:
            pal.final_verify()

    def stop() -> None:
        for t in targets:
            t.stop()

    run_guarded(work, stop, problems)

    report = print_report(args, info, targets, rounds,
                          pal.verify if pal is not None else None, wrk, problems)
    return finish(args, report, problems, workdir, temporary)


def finish(args: argparse.Namespace, report: dict[str, Any], problems: list[str],
           workdir: Path, temporary: bool) -> int:
    """Write the JSON figures if asked, keep the workdir only when something went wrong, and
    turn the verdict into the exit code."""
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
