"""A worker that is killed on purpose (test_crash.py): it leases every due delivery, says so, then
writes as fast as it can (events with held deliveries, which nobody claims) until SIGKILL."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from store_fixtures import published

from attribution_webhooks.adapters.sql import open_store


async def main(url: str, lease_seconds: float) -> None:
    store = open_store(url)
    leased = await store.claim(datetime.now(UTC), 1000, timedelta(seconds=lease_seconds))
    print(f"leased {len(leased)}", flush=True)
    n = 0
    while True:
        n += 1
        ids = [f"dlv_held_{n:06d}_{k}" for k in range(20)]
        await store.append(*published(f"evt_crash_{n:06d}", ids, datetime.now(UTC), held=True))
        if n == 20:
            print("writing", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
