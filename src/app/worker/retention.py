"""The retention task: removes finished history older than the retention age, beside delivery.

It runs next to a dispatcher (``runner``) and never in its way: each batch is one short
transaction of at most ``RetentionPolicy.batch`` events with their deliveries, followed by a
pause, so appends and claims queue behind it for one batch at most (ADR 0018 measures it). A
pass walks every event published before the horizon, oldest first, then removes deleted
endpoints and expired tombstones; the next pass starts ``interval`` later. A failing batch is
logged and the pass tried again at the next interval: retention never stops delivery.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from attrs import define, field

from ...core.ports import Clock, History
from ...core.retention import PurgeReport, RetentionPolicy

__all__ = ["Retention", "RetentionStats"]

log = logging.getLogger(__name__)


@define
class RetentionStats:
    """What the task removed since it started, and how many passes it finished."""

    passes: int = 0
    batches: int = 0
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    endpoints: int = 0
    tombstones: int = 0

    def add(self, report: PurgeReport) -> None:
        self.events += report.events
        self.deliveries += report.deliveries
        self.attempts += report.attempts
        self.endpoints += report.endpoints
        self.tombstones += report.tombstones


@define
class Retention:
    """Purges ``store`` by ``policy`` on ``clock``'s time; ``run(stop)`` it on the event loop."""

    store: History
    clock: Clock
    policy: RetentionPolicy
    stats: RetentionStats = field(factory=RetentionStats)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; returns at once when nothing is ever purged."""
        if not self.policy.enabled:
            return
        while not stop.is_set():
            try:
                await self.run_pass(stop)
            except Exception:
                log.exception("retention pass failed; trying again in %s", self.policy.interval)
            await self._pause(stop, self.policy.interval)

    async def run_pass(self, stop: asyncio.Event | None = None) -> None:
        """One pass: every event published before the horizon, batch by batch, then deleted
        endpoints and tombstones. Stops between batches once ``stop`` is set."""
        now = self.clock.now()
        horizon = self.policy.horizon(now)
        if horizon is None:
            return
        limit = self.policy.batch
        after = None
        while True:
            report = await self.store.purge_events(horizon, now, after, limit)
            self._count(report)
            after = report.cursor
            if after is None or (stop is not None and stop.is_set()):
                break
            await self._pause(stop, self.policy.pause)
        while not (stop is not None and stop.is_set()):
            report = await self.store.purge_deleted(horizon, limit)
            self._count(report)
            if report.endpoints < limit and report.tombstones < limit:
                break
            await self._pause(stop, self.policy.pause)
        self.stats.passes += 1

    def _count(self, report: PurgeReport) -> None:
        self.stats.batches += 1
        self.stats.add(report)
        if report.events or report.endpoints or report.tombstones:
            log.info(
                "retention removed %d events, %d deliveries, %d attempts, %d endpoints, %d tombstones",
                report.events,
                report.deliveries,
                report.attempts,
                report.endpoints,
                report.tombstones,
            )

    async def _pause(self, stop: asyncio.Event | None, wait: timedelta) -> None:
        """Wait ``wait`` of the clock's time, or less if ``stop`` is set meanwhile."""
        sleeping = asyncio.ensure_future(self.clock.sleep(wait.total_seconds()))
        if stop is None:
            await sleeping
            return
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, stopping):
                task.cancel()
            await asyncio.gather(sleeping, stopping, return_exceptions=True)
