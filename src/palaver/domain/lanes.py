"""The two delivery lanes: lifecycle signals before payloads.

`system.*` events (replica_joined, shutdown) are what integrations act on at
once; `application.*` events (the transcript, and later recordings and
perception analyses) carry data that can follow. Under a backlog the delivery
worker takes, renders and sends the system lane first, at every stage.
Order within one conversation does not depend on lanes: its application
events are taken only after its system events (see delivery/worker.py).
"""

from __future__ import annotations

from enum import StrEnum


class Lane(StrEnum):
    SYSTEM = "system"
    APPLICATION = "application"


LANES = (Lane.SYSTEM, Lane.APPLICATION)


def lane_of(event_type: str) -> Lane:
    return Lane.SYSTEM if event_type.startswith("system.") else Lane.APPLICATION
