"""Palaver as an operator and a client meet it: `palaver serve` processes, the CLI, HTTP clients.

Used by the fixtures in conftest.py and imported by tests that start servers of their own
(a module, not conftest.py: tests/storage has a conftest.py of its own, and `import conftest`
would find whichever was imported first).
"""


from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from backends import Backend, SQLiteBackend

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0

LISTENING_RE = re.compile(r"^Palaver listening on (http://\S+?)/?$")
SHOWN_ONCE_RE = re.compile(r"^API key \(shown once\): (\S+)$")
UNLIMITED = 100_000  # "large enough" concurrency for accounts that must never hit the limit


# --------------------------------------------------------------------------- CLI


class CliError(AssertionError):
    pass


def run_cli(*args: str, check: bool = True, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``python -m palaver <args>`` and return the completed process."""
    cmd = [sys.executable, "-m", "palaver", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CliError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


@dataclass(frozen=True)
class CreatedKey:
    key: str
    key_id: str
    account_id: str
    stdout: str
    webhook_secret: str | None = None


def create_key(
    database_url: str,
    *,
    name: str | None = None,
    max_concurrent: int | None = None,
    account: str | None = None,
) -> CreatedKey:
    args = ["keys", "create", "--database-url", database_url]
    if name is not None:
        args += ["--name", name]
    if max_concurrent is not None:
        args += ["--max-concurrent", str(max_concurrent)]
    if account is not None:
        args += ["--account", account]
    out = run_cli(*args).stdout
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    assert lines, f"keys create printed nothing: {out!r}"
    fields = {}
    for ln in lines[:-1]:
        if ":" in ln:
            k, _, v = ln.partition(":")
            fields[k.strip()] = v.strip()
    assert "account_id" in fields and "key_id" in fields, f"unexpected keys create output: {out!r}"
    return CreatedKey(key=lines[-1], key_id=fields["key_id"], account_id=fields["account_id"], stdout=out,
                      webhook_secret=fields.get("webhook_secret"))


def revoke_key(database_url: str, key_id: str) -> subprocess.CompletedProcess:
    return run_cli("keys", "revoke", key_id, "--database-url", database_url)


# ------------------------------------------------------------------ HTTP helpers


def _no_server_errors(response: httpx.Response) -> None:
    """Event hook: no response may ever be a 5xx or leak a traceback."""
    response.read()
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:2000]}"
    )
    assert b"Traceback" not in response.content, (
        f"{response.request.method} {response.request.url} leaked a traceback: {response.text[:2000]}"
    )


def new_http_client(base_url: str, key: str | None = None, **kwargs) -> httpx.Client:
    headers = {"x-api-key": key} if key is not None else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=kwargs.pop("timeout", 30.0),
        event_hooks={"response": [_no_server_errors]},
        **kwargs,
    )


def children(pid: int) -> dict[int, bytes]:
    """Child pid -> its command line (Linux: /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = cmdline
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def key_works(base_url: str, key: str) -> bool:
    r = httpx.get(f"{base_url}/v2/conversations", headers={"x-api-key": key}, timeout=10)
    return r.status_code == 200


# ------------------------------------------------------------------------ server


class PalaverServer:
    """A ``python -m palaver serve`` subprocess on a given database (SQLite file or PostgreSQL)."""

    def __init__(self, workdir: Path, *, database: Backend | None = None, public_url: str | None = None,
                 name: str = "server", extra_args: tuple[str, ...] = ()) -> None:
        self.extra_args = tuple(extra_args)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database = database or SQLiteBackend(self.workdir / "p.db")
        self.public_url = public_url
        self.name = name
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.base_url: str | None = None
        self.shown_once_key: str | None = None  # from the latest start
        self.stdout_lines: list[str] = []
        self.starts = 0
        self.killed_after_sigterm = False  # set when the latest stop() had to fall back to SIGKILL
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    # -- configuration
    @property
    def database_url(self) -> str:
        return self.database.url

    @property
    def backend(self) -> str:
        return self.database.name

    def stored_conversation(self, conversation_id: str) -> dict | None:
        """The conversation's row as stored, deleted or not (read around the API)."""
        return self.database.raw_conversation(conversation_id)

    @property
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "palaver", "serve", "--host", "127.0.0.1", "--port", "0",
               "--database-url", self.database_url]
        if self.public_url:
            cmd += ["--public-url", self.public_url]
        return cmd + list(self.extra_args)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle
    def _read_stdout(self, stream, lines: list[str], ready: threading.Event, state: dict) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            lines.append(line)
            m = SHOWN_ONCE_RE.match(line.strip())
            if m:
                state["key"] = m.group(1)
            m = LISTENING_RE.match(line.strip())
            if m and not ready.is_set():
                state["base_url"] = m.group(1)
                ready.set()
        stream.close()

    def start(self, timeout: float = STARTUP_TIMEOUT) -> PalaverServer:
        assert not self.running, "already running"
        self.starts += 1
        self.stdout_lines = []
        self._ready = threading.Event()
        state: dict = {}
        stderr = open(self.stderr_path, "ab")
        stderr.write(f"\n===== start #{self.starts}: {' '.join(self.command)}\n".encode())
        stderr.flush()
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            cwd=self.workdir,
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
        )
        stderr.close()
        self._reader = threading.Thread(
            target=self._read_stdout, args=(self.proc.stdout, self.stdout_lines, self._ready, state), daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if self.proc.poll() is not None else "did not print the listening line"
                self._force_kill()
                raise RuntimeError(
                    f"palaver serve {why} (rc={self.proc.returncode}) within {timeout}s\n"
                    f"--- stdout\n" + "\n".join(self.stdout_lines) + "\n--- stderr\n" + self.stderr_text()
                )
        self.base_url = state["base_url"]
        self.shown_once_key = state.get("key")
        ok = wait_until(lambda: self._health_ok(), timeout=max(1.0, deadline - time.monotonic()))
        if not ok:
            self._force_kill()
            raise RuntimeError(f"GET {self.base_url}/health never answered 200\n{self.stderr_text()}")
        return self

    def _health_ok(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``. Returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.killed_after_sigterm = False
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._force_kill()
                self.killed_after_sigterm = True
        self._join_reader()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL at once (crash simulation)."""
        if self.proc is None:
            return None
        self._force_kill()
        self._join_reader()
        return self.proc.returncode

    def _force_kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def restart(self) -> PalaverServer:
        self.stop()
        return self.start()

    # -- conveniences
    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        assert self.base_url, "server not started"
        return new_http_client(self.base_url, key, **kwargs)

    def create_key(self, **kwargs) -> CreatedKey:
        return create_key(self.database_url, **kwargs)

    def revoke_key(self, key_id: str) -> subprocess.CompletedProcess:
        return revoke_key(self.database_url, key_id)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``python -m palaver <args> --database-url <this server's db>``."""
        return run_cli(*args, "--database-url", self.database_url, check=check)

    def new_account_key(self, max_concurrent: int | None = None, wait: bool = True) -> str:
        created = self.create_key(max_concurrent=max_concurrent, name="test-account")
        if wait and self.running:
            assert wait_until(lambda: key_works(self.base_url, created.key), timeout=5.0), (
                "a key created with the CLI never started working on the running server"
            )
        return created.key


