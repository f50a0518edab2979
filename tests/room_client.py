"""A scripted room participant: a WebSocket to `<conversation_url>/ws`, read by a background thread.

Tests send Interactions Protocol messages and wait for what the room sends back;
every message received is kept (`messages`) so a test can check order and seq.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ECHO_PERSONA = "pipecat0"  # a stock echo persona: the replica says only what conversation.echo carries
REPLICA = "r90bbd427f71"  # the stock "Anna"


def create_room(client: Any, **body: Any) -> dict[str, Any]:
    """A conversation (with the echo persona and Anna unless `body` says otherwise), through the API."""
    body.setdefault("replica_id", REPLICA)
    body.setdefault("persona_id", ECHO_PERSONA)
    r = client.post("/v2/conversations", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def socket_url(conversation_url: str, **params: str) -> str:
    base = conversation_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return f"{base}/ws" + (f"?{urlencode(params)}" if params else "")


class RoomParticipant:
    def __init__(self, conversation_url: str, *, name: str = "Tester", token: str | None = None) -> None:
        params = {"name": name}
        if token is not None:
            params["token"] = token
        self.conversation_id = conversation_url.rstrip("/").rsplit("/", 1)[1]
        self.ws = connect(socket_url(conversation_url, **params), max_size=None, open_timeout=10, legacy=True)
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_at: float | None = None
        self._cond = threading.Condition()
        self._cursor = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                with self._cond:
                    self.messages.append(json.loads(frame))
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self.closed_at = time.monotonic()
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
                self._cond.notify_all()

    # -- sending
    def send(self, event_type: str, properties: dict[str, Any] | None = None, **extra: Any) -> None:
        message = {
            "message_type": "conversation",
            "event_type": event_type,
            "conversation_id": self.conversation_id,
            "properties": properties or {},
            **extra,
        }
        self.ws.send(json.dumps(message))

    def send_raw(self, data: str | bytes) -> None:
        self.ws.send(data)

    # -- receiving
    def wait_for(self, event_type: str, timeout: float = 10.0, **props: Any) -> dict[str, Any]:
        """The next message (after the last one waited for) of this type whose properties match `props`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._cursor, len(self.messages)):
                    m = self.messages[i]
                    p = m.get("properties") or {}
                    if m.get("event_type") == event_type and all(p.get(k) == v for k, v in props.items()):
                        self._cursor = i + 1
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed_at is not None and not self._reader.is_alive()):
                    seen = [
                        m.get("event_type") if m.get("event_type") != "room.error" else m
                        for m in self.messages[self._cursor :]
                    ]
                    raise AssertionError(
                        f"no {event_type} {props or ''} within {timeout}s; after cursor: {seen}; "
                        f"closed: {self.close_code} {self.close_reason}"
                    )
                self._cond.wait(min(left, 0.2))

    def seen(self, event_type: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every message of this type received so far (waiting for the first), whatever the cursor."""
        deadline = time.monotonic() + timeout
        while not self.of_type(event_type):
            assert time.monotonic() < deadline, f"no {event_type} within {timeout}s: {self.messages}"
            time.sleep(0.02)
        return self.of_type(event_type)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.messages if m.get("event_type") == event_type]

    def wait_closed(self, timeout: float = 10.0) -> int | None:
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the socket did not close"
        return self.close_code

    def close(self) -> None:
        self.ws.close()
        self._reader.join(5)

    def __enter__(self) -> RoomParticipant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
