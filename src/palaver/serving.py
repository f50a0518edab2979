"""Running the server: one process, or N API processes on one listening socket (`serve --workers N`).

With N > 1 (PostgreSQL only) this process binds the socket, forks N server
processes that all accept on it (the kernel spreads connections between them),
starts the webhook delivery workers itself, and supervises: a server process
that dies is started again; SIGTERM or SIGINT stops them all gracefully. Each
server process runs the timer tick too; PostgreSQL makes every timer fire once
whichever process gets there (storage/postgres.py). A server process watches a
pipe from this one and stops if this process dies, even by `kill -9`, so none
is left serving alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from palaver.runtime import collect_young_objects_less_often
from palaver.settings import Settings

log = logging.getLogger("palaver.serve")

WS_MAX_FRAME = 256 * 1024  # bytes
RESTART_DELAY = 1.0  # seconds before a server process that died is started again


def uvicorn_server(app: Any, sock: socket.socket) -> tuple[Any, Callable[[], None]]:
    """A uvicorn server for `app` on `sock`, and the call that runs it."""
    import uvicorn

    from palaver.api.end_protocol import EndProtocol

    config = uvicorn.Config(
        app,
        loop="uvloop",
        # uvicorn's httptools protocol, answering plain end requests itself (api/end_protocol.py).
        http=functools.partial(EndProtocol, services=app.state),
        access_log=False,
        lifespan="on",
        log_level="warning",
        # Room sockets: a frame is refused (close 1009) well before it can take much memory;
        # the room itself refuses messages over 64 KiB with a clear error (api/room_socket.py).
        ws_max_size=WS_MAX_FRAME,
        # Room messages are small JSON objects: compressing each one cost the server 3-4 % of its
        # time under the rooms benchmark (profiled) and a client as much again, for little saved.
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    return server, lambda: server.run(sockets=[sock])


def serve(settings: Settings, sock: socket.socket, *, workers: int, on_ready: Callable[[], None]) -> None:
    from palaver.app import create_app

    if workers == 1:
        collect_young_objects_less_often()
        _, run = uvicorn_server(create_app(settings, on_ready=on_ready), sock)
        run()
        return
    Supervisor(settings, sock, workers).run(on_ready)


class Supervisor:
    """Forks and watches N server processes sharing one socket."""

    def __init__(self, settings: Settings, sock: socket.socket, workers: int) -> None:
        self.settings = settings
        self.child_settings = replace(settings, delivery_process=False)
        self.sock = sock
        self.workers = workers
        self.children: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        read_end, self._lifeline = os.pipe()  # closed when this process dies: children then stop
        self._lifeline_read = read_end

    def run(self, on_ready: Callable[[], None]) -> None:
        from palaver.delivery import process as delivery_process

        deliverers = delivery_process.spawn_all(self.settings) if self.settings.delivery_process else []
        for slot in range(self.workers):
            self._start(slot)
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        on_ready()
        try:
            while self.children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries these
                    continue
                slot = self.children.pop(pid, None)
                if slot is None:
                    continue  # a delivery worker, or a child already replaced
                if not self.stopping:
                    log.error("server process %d exited (%s); starting another", pid, _describe(status))
                    time.sleep(RESTART_DELAY)
                    if not self.stopping:
                        self._start(slot)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for worker in deliverers:
                delivery_process.stop(worker)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _start(self, slot: int) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = slot
            return
        code = 1
        try:
            os.close(self._lifeline)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = _child(self.child_settings, self.sock, self._lifeline_read)
        except BaseException:
            log.exception("server process failed")
        finally:
            os._exit(code)


def _child(settings: Settings, sock: socket.socket, lifeline: int) -> int:
    from palaver.app import create_app

    collect_young_objects_less_often()
    server, run = uvicorn_server(create_app(settings), sock)

    def watch() -> None:
        while os.read(lifeline, 1):
            pass
        server.should_exit = True  # the supervisor is gone

    threading.Thread(target=watch, name="palaver-lifeline", daemon=True).start()
    run()
    return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
