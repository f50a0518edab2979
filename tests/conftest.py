"""Shared fixtures for the black-box HTTP suites (tests/api, tests/e2e).

Everything here talks to Palaver the way an operator and a client would: the
server runs as a real subprocess (``python -m palaver serve``), keys are made
with the ``palaver keys`` CLI, and requests go over HTTP with httpx.

Fixtures:

* ``server``       session-scoped server on a fresh database; the session runs every HTTP test once
                   per backend (``db_backend``: SQLite, then PostgreSQL; see tests/backends.py)
* ``api_key``      key of the main test account (unlimited concurrency)
* ``client``       httpx.Client bound to ``server`` with ``api_key``
* ``new_account``  factory: ``new_account(max_concurrent=None)`` -> key of a fresh account
* ``make_client``  factory: ``make_client(key=None, base_url=None)`` -> httpx.Client
* ``palaver_cli``  factory: ``palaver_cli(*args)`` runs ``python -m palaver ...``
* ``server_factory`` factory for extra, function-scoped servers (restart tests, ...)
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest

pytest.register_assert_rewrite("backends", "servers")
from backends import Backend  # noqa: E402 - after the rewrite hook
from servers import UNLIMITED, CreatedKey, PalaverServer, create_key, new_http_client, run_cli  # noqa: E402

pytest_plugins = ["backends"]


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory, make_database) -> Iterator[Callable[..., PalaverServer]]:
    """Factory for extra servers, each on a new database of the session's backend; every server
    it made is stopped at the end of the session (or of the backend's part of it)."""
    made: list[PalaverServer] = []

    def factory(*, database: Backend | None = None, public_url: str | None = None, start: bool = True,
                name: str = "server", extra_args: tuple[str, ...] = ()) -> PalaverServer:
        workdir = tmp_path_factory.mktemp(name)
        database = database or make_database(workdir, name)
        srv = PalaverServer(workdir, database=database, public_url=public_url, name=name, extra_args=extra_args)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    for srv in made:
        srv.stop()


@pytest.fixture
def fresh_server(server_factory) -> Iterator[Callable[..., PalaverServer]]:
    """Function-scoped factory: servers made through it are stopped when the test ends."""
    made: list[PalaverServer] = []

    def factory(**kwargs) -> PalaverServer:
        srv = server_factory(**kwargs)
        made.append(srv)
        return srv

    yield factory
    for srv in made:
        srv.stop()


@pytest.fixture(scope="session")
def _main_server(tmp_path_factory, make_database) -> Iterator[tuple[PalaverServer, CreatedKey]]:
    workdir = tmp_path_factory.mktemp("main")
    srv = PalaverServer(workdir, database=make_database(workdir, "main"), name="main")
    run_cli("migrate", "--database-url", srv.database_url)
    created = create_key(srv.database_url, name="main", max_concurrent=UNLIMITED)
    srv.start()
    yield srv, created
    srv.stop()
    log = srv.stderr_text()
    if "Traceback" in log:
        first = log.index("Traceback")
        warnings.warn(
            f"the session server logged a traceback (full log: {srv.stderr_path}):\n{log[first:first + 3000]}",
            stacklevel=1,
        )


@pytest.fixture(scope="session")
def server(_main_server) -> PalaverServer:
    srv, _ = _main_server
    assert srv.running, f"the session server died\n{srv.stderr_text()}"
    return srv


@pytest.fixture(scope="session")
def api_key(_main_server) -> str:
    return _main_server[1].key


@pytest.fixture(scope="session")
def main_account_id(_main_server) -> str:
    return _main_server[1].account_id


@pytest.fixture
def client(server, api_key) -> Iterator[httpx.Client]:
    with server.client(api_key) as c:
        yield c


@pytest.fixture
def make_client(server) -> Iterator[Callable[..., httpx.Client]]:
    made: list[httpx.Client] = []

    def factory(key: str | None = None, base_url: str | None = None, **kwargs) -> httpx.Client:
        c = new_http_client(base_url or server.base_url, key, **kwargs)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


@pytest.fixture
def new_account(server) -> Callable[..., str]:
    """``new_account(max_concurrent=None)`` -> API key of a brand-new account on ``server``."""

    def factory(max_concurrent: int | None = None) -> str:
        return server.new_account_key(max_concurrent=max_concurrent)

    return factory


@pytest.fixture(scope="session")
def other_account_key(server) -> str:
    """A second, unrelated account (for isolation tests)."""
    return server.new_account_key(max_concurrent=UNLIMITED)


@pytest.fixture(scope="session")
def palaver_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_cli


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 (tests/webhook_receiver.py)."""
    from webhook_receiver import start_receiver

    rec = start_receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()
