"""Retention at the end of every simulated run (ADR 0018): purge all the history the rules allow
and check that only finished history went.

After the run is checked and its log read (so the fingerprint is unchanged), the store is
purged with a horizon just past the end: everything final may go. Then, delivery by delivery:
one that was not final (pending, leased, held) is still there with its event; one that is gone
was final; none is left whose event is gone; a purged event answers with its tombstone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from ...core.events import DeliveryScheduled
from ...core.ports import History, RecordedEvent, Storage
from ...core.retention import FINAL, RetentionPolicy

__all__ = ["purge_and_check"]


async def purge_and_check(store: Storage, log: Sequence[RecordedEvent], now: datetime) -> list[str]:
    """Purge everything purgeable at ``now`` from ``store`` in the policy's batches; the
    violations of 'only finished history goes' found."""
    if not hasattr(store, "purge_events"):  # a store without retention (History is optional)
        return []
    history = cast(History, store)
    scheduled = [r.event for r in log if isinstance(r.event, DeliveryScheduled)]
    before = {d.delivery_id: await store.delivery(d.delivery_id) for d in scheduled}
    horizon = now + timedelta(seconds=1)
    batch = RetentionPolicy().batch
    cursor = None
    while True:
        report = await history.purge_events(horizon, now, cursor, batch)
        cursor = report.cursor
        if cursor is None:
            break
    violations = []
    for delivery in scheduled:
        delivery_id = delivery.delivery_id
        was, now_view = before[delivery_id], await store.delivery(delivery_id)
        event = await store.event(delivery.account_id, delivery.event_id)
        if was is None:
            continue
        final = was.delivery.status in FINAL
        if now_view is None and not final:
            violations.append(f"retention removed delivery {delivery_id} while {was.delivery.status}")
        if now_view is not None and event is None:
            violations.append(f"retention removed event {delivery.event_id} but kept delivery {delivery_id}")
        if event is None and await history.purged_event(delivery.account_id, delivery.event_id) is None:
            violations.append(f"event {delivery.event_id} is gone without a tombstone")
    return violations
