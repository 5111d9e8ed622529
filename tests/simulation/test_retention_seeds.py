"""Retention in the simulation (ADR 0018): at the end of every seed's run, everything the rules
allow is purged, and only finished history may have gone (``testing/simulation/retention.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.core.ports import Storage
from attribution_webhooks.testing.simulation import simulate


def _keeping(stores: list[MemoryStore]) -> Any:
    async def factory() -> Storage:
        store = MemoryStore()
        stores.append(store)
        return store

    return factory


def test_the_end_of_run_purge_removes_finished_history_and_nothing_else() -> None:
    """Across some seeds the purge removes history (so the check looks at something), and the
    seeds hold every invariant, retention's included."""
    removed = 0
    for seed in range(20):
        stores: list[MemoryStore] = []
        result = simulate(seed, _keeping(stores))
        assert result.violations == [], (seed, result.violations[:3])
        removed += len(result.log) - len(stores[0].all_events())
    assert removed > 0


def test_a_purge_that_takes_unfinished_deliveries_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose rule purged every event, finished or not, breaks the invariant."""
    monkeypatch.setattr("attribution_webhooks.adapters.memory_history.event_purgeable", lambda *_: True)
    found = [v for seed in range(40) for v in simulate(seed).violations if v.startswith("retention removed")]
    assert found, "no seed left an unfinished delivery to purge"
