#!/usr/bin/env python3
"""What the key cache costs the end path on PostgreSQL (decisions.md #70).

Every request authenticates. A key's lookup is cached for 0.5 s, so a key
created or revoked anywhere takes effect on every process within a second;
the price is one `find_keys` query per key, per process, every 0.5 s. This
prints the cost of a cached lookup, of a refreshed one, and what the refreshes
add to an end on average at a given end rate.

    python benchmarks/key_cache.py [--database-url postgresql://...] [--rate 8000]

Without --database-url it starts a throw-away PostgreSQL (palaver.tools.pgcluster).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from palaver.domain.clock import ManualClock, SystemClock
from palaver.service.auth import Authenticator
from palaver.service.keys import issue_key
from palaver.storage.postgres import PostgresStorage
from palaver.tools.pgcluster import PostgresCluster


async def measure(url: str, ttl: float, rates: list[int]) -> None:
    storage = PostgresStorage(url)
    await storage.migrate()
    try:
        key = (await issue_key(storage, SystemClock(), name=f"bench-{uuid.uuid4().hex[:6]}")).key
        clock = ManualClock()
        auth = Authenticator(storage, clock, ttl=ttl)
        await auth.account_for(key)
        hits = 200_000
        started = time.perf_counter()
        for _ in range(hits):
            await auth.account_for(key)
        hit = (time.perf_counter() - started) / hits
        refreshes = 2_000
        started = time.perf_counter()
        for _ in range(refreshes):
            clock.advance(ttl + 0.001)
            await auth.account_for(key)
        refresh = (time.perf_counter() - started) / refreshes
    finally:
        await storage.close()
    print(f"cached lookup:   {hit * 1e6:7.2f} us (wall, in-process)")
    print(f"refreshed lookup:{refresh * 1e6:7.1f} us (one find_keys query)")
    for rate in rates:
        per_end = (refresh / ttl) / rate
        print(f"at {rate:,} ends/s with one key: {1 / ttl:.0f} refreshes/s, {per_end * 1e6:.3f} us per end on average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--ttl", type=float, default=0.5)
    parser.add_argument("--rate", type=int, action="append", default=None, help="ends/s (repeatable)")
    args = parser.parse_args()
    rates = args.rate or [8_000, 10_000]
    if args.database_url:
        asyncio.run(measure(args.database_url, args.ttl, rates))
        return
    with PostgresCluster() as cluster:
        asyncio.run(measure(cluster.create_database("keycache"), args.ttl, rates))


if __name__ == "__main__":
    main()
