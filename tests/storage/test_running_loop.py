"""The writers' remembered event loop: the right loop, whichever loop or thread asks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from palaver.storage.running_loop import RunningLoop


def test_each_run_gets_its_own_loop() -> None:
    running = RunningLoop()

    async def ask() -> bool:
        return running() is asyncio.get_running_loop()

    # The first loop has stopped when the second asks: it must not get the first one back.
    assert asyncio.run(ask())
    assert asyncio.run(ask())


def test_a_loop_running_in_another_thread_is_not_handed_out() -> None:
    running = RunningLoop()
    remembered = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    async def hold() -> None:
        seen.append(running() is asyncio.get_running_loop())
        remembered.set()
        while not release.is_set():
            await asyncio.sleep(0.001)

    other = threading.Thread(target=lambda: asyncio.run(hold()))
    other.start()
    try:
        assert remembered.wait(5)

        async def ask() -> bool:
            # The other thread's loop is still running, but it is not this thread's.
            return running() is asyncio.get_running_loop()

        assert asyncio.run(ask())
    finally:
        release.set()
        other.join(5)
    assert seen == [True]


def test_outside_a_loop_it_raises_like_asyncio() -> None:
    with pytest.raises(RuntimeError):
        RunningLoop()()
