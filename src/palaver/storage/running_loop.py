"""The running event loop, remembered by the writers that ask for it on every request."""

from __future__ import annotations

import asyncio
import threading


class RunningLoop:
    """`asyncio.get_running_loop()`, looked up once per loop rather than on every call.

    On Python 3.11 `get_running_loop()` makes a getpid() system call each time
    (its check for a fork): 2.8 % of the event loop's samples under the
    sustained end load, where the SQLite writer asked for it on every end
    (py-spy, docs/performance.md). The remembered loop is looked up again when it
    has stopped or the caller is on another thread (tests drive apps from a
    portal thread while their own loop runs).
    """

    __slots__ = ("_loop", "_thread")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    def __call__(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or self._thread != threading.get_ident() or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
            self._thread = threading.get_ident()
        return loop
