"""PostgreSQL migrations stay additive, so `palaver migrate` is safe while the previous version serves.

Processes of the previous version keep running queries written for the old
schema while the new one is applied (docs/deployment.md, upgrades). They cope
with new tables, new nullable columns and new indexes; they break on a dropped
or renamed column, a changed type, or a new NOT NULL column without a default.
Such "contract" changes belong in a later release; this test makes sure none
slips into a migration unnoticed.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

DESTRUCTIVE = [
    (r"\bDROP\b", "drops something"),
    (r"\bRENAME\b", "renames something"),
    (r"\bALTER\s+COLUMN\b[^;]*\bTYPE\b", "changes a column's type"),
    (r"\bSET\s+NOT\s+NULL\b", "makes a column NOT NULL"),
    (
        r"\bADD\s+COLUMN\b(?:(?!;|\bDEFAULT\b)[^;])*\bNOT\s+NULL\b(?:(?!\bDEFAULT\b)[^;])*;",
        "adds a NOT NULL column without a default",
    ),
    (r"\bTRUNCATE\b|\bDELETE\s+FROM\b", "deletes rows"),
]


def postgres_migrations() -> list[tuple[str, str]]:
    folder = resources.files("palaver.storage.migrations").joinpath("postgres")
    return sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))


def without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


@pytest.mark.parametrize(("name", "sql"), postgres_migrations())
def test_every_postgres_migration_is_additive(name: str, sql: str) -> None:
    body = without_comments(sql)
    for pattern, what in DESTRUCTIVE:
        assert not re.search(pattern, body, re.IGNORECASE | re.DOTALL), f"{name} {what}: not safe with old processes"


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE conversations DROP COLUMN request;",
        "ALTER TABLE accounts RENAME COLUMN name TO label;",
        "ALTER TABLE accounts ALTER COLUMN name TYPE varchar(10);",
        "ALTER TABLE accounts ALTER COLUMN name SET NOT NULL;",
        "ALTER TABLE accounts ADD COLUMN plan text NOT NULL;",
        "DELETE FROM webhook_outbox;",
    ],
)
def test_the_check_sees_destructive_statements(sql: str) -> None:
    assert any(re.search(p, sql, re.IGNORECASE | re.DOTALL) for p, _ in DESTRUCTIVE)


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE accounts ADD COLUMN plan text;",
        "ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';",
        "CREATE INDEX CONCURRENTLY x ON conversations(created_at);",
        "CREATE TABLE t (a text NOT NULL);",
    ],
)
def test_the_check_lets_additive_statements_pass(sql: str) -> None:
    assert not any(re.search(p, sql, re.IGNORECASE | re.DOTALL) for p, _ in DESTRUCTIVE)
