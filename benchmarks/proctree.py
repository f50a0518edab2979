"""CPU time of a process tree (Linux /proc), for the benchmarks' CPU-per-request figures.

A server is more than its first process: `palaver serve --workers 2` forks
workers, `palaver serve` on SQLite starts a delivery process, PostgreSQL runs a
backend per connection plus autovacuum workers that come and go.  The CPU of a
tree is each live process's own user+system time plus the time of the
children it has already waited for (`cutime`/`cstime`), so a short-lived
autovacuum worker that exited during the measurement still counts, through the
postmaster that reaped it.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children_map() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and all its live descendants."""
    kids = children_map() if kids is None else kids
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu(
    pid: int | None,
    exclude: set[int] = frozenset(),  # type: ignore[assignment]
    kids: dict[int, list[int]] | None = None,
) -> float:
    """CPU seconds used so far by `pid`'s tree, children it reaped included; subtrees in `exclude` left out.

    `kids` (from `children_map`) lets several trees be read from one scan of /proc."""
    if pid is None:
        return 0.0
    kids = children_map() if kids is None else kids
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in exclude:
            continue
        fields = _stat(p)
        if fields is None:
            continue
        # utime, stime, cutime, cstime (fields 14-17 of stat; 11-14 after the command name)
        total += sum(int(f) for f in fields[11:15]) / _TICK
        todo += kids.get(p, [])
    return total
