"""The worker's heartbeat: short leases, renewed for as long as the worker lives (ADR 0014).

A lease lasts ``DispatchSettings.lease``; every ``heartbeat`` the worker renews each lease it
holds (attempts in flight, deliveries waiting for a slot, outcomes not yet written). A worker
that dies stops renewing, and its deliveries are claimable again when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from ...core.ports import Clock, DeliveryQueue
from ...core.views import DueDelivery
from .settings import DispatchSettings

__all__ = ["heartbeat"]

log = logging.getLogger(__name__)


async def heartbeat(
    queue: DeliveryQueue,
    clock: Clock,
    settings: DispatchSettings,
    held: Callable[[], list[DueDelivery]],
    renewed: Callable[[datetime], None],
) -> None:
    """Renew the leases ``held()`` returns, every ``heartbeat``, until cancelled; tell
    ``renewed`` how long every lease held then lasts at least."""
    while True:
        await clock.sleep(settings.heartbeat.total_seconds())
        now = clock.now()
        leases = held()
        if not leases:
            continue
        try:
            await queue.renew(leases, now + settings.lease)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store is down: the leases may lapse, the next beat tries again
            log.exception("renewing %d leases failed", len(leases))
            continue
        renewed(now + settings.lease)
