"""Typed settings, from CLI flags and `PALAVER_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///palaver.db"
# The delivery worker's scheduling priority: the lowest, so that it uses the CPU the
# server leaves and takes as little as the kernel allows from request handling.
# Measured on 2 cores, 20,000-end bursts: nice 10 cost ends 9.5 % and 23.1 % of their
# throughput in two runs, nice 19 7.5 % and 7.6 %, for the same shutdown delay
# (docs/performance.md).
DELIVERY_NICENESS = 19
# PostgreSQL: how long a delivery worker's claim on a webhook lasts: longer than an attempt can
# take (connect 5 s + read 10 s) with room to record it. A worker that dies holds its claims this
# long; then another worker sends them again (same webhook-id).
DEFAULT_WEBHOOK_LEASE = 30.0
# The replica's language model: how long a room waits for the first streamed token of an answer
# (connecting included), and for each next one, before it tells the participants the model failed.
DEFAULT_LLM_TIMEOUT = 30.0


def default_database_url() -> str:
    return os.environ.get("PALAVER_DATABASE_URL", DEFAULT_DATABASE_URL)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = "http://127.0.0.1:8000"
    # NORMAL in WAL mode: a commit survives a crash of the process, not a power loss
    # (docs/durability.md). FULL also survives power loss, at an fsync per group commit.
    sqlite_synchronous: str = "NORMAL"
    key_cache_ttl: float = 0.5
    # Webhooks: private/loopback targets are refused unless allowed (local development, tests).
    allow_private_callbacks: bool = False
    webhook_max_attempts: int = 8
    webhook_max_age: float = 86_400.0
    webhook_lease: float = DEFAULT_WEBHOOK_LEASE  # PostgreSQL only
    # `palaver serve` runs webhook delivery in a process of its own (delivery/process.py);
    # the in-process app used by tests leaves it off.
    delivery_process: bool = False
    delivery_niceness: int = DELIVERY_NICENESS
    delivery_workers: int = 1
    # PostgreSQL: connections in each process's main pool (docs/deployment.md).
    pool_size: int = 10
    # The default language model for personas whose `layers.llm` names no `base_url` (docs/brains.md).
    # The operator's endpoint is trusted: it is reached even on a private address.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_first_token_timeout: float = DEFAULT_LLM_TIMEOUT
    llm_idle_timeout: float = DEFAULT_LLM_TIMEOUT
