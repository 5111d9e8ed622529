"""Read-model rows are snapshots of the fold of their streams (ADR 0002), on every store.

Over simulated runs (seeds drawn by hypothesis), every row the engine is handed (endpoints for
the use cases and the recorder's auto-disable, claimed and re-read deliveries for the deciders)
equals the fold of its stream up to the row's version, and at the end every row, the attempt log
and the published events equal the fold of the whole log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from attrs import evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.core.events import AttemptFailed, AttemptSucceeded
from attribution_webhooks.core.ports import Storage
from attribution_webhooks.testing.loop import run_virtual
from attribution_webhooks.testing.simulation import SimulationResult, simulate
from attribution_webhooks.testing.simulation.snapshots import SnapshotAudit

seeds = st.integers(min_value=0, max_value=2**31)


def _audited(make: Callable[[], Storage]) -> tuple[Callable[[], Awaitable[Storage]], list[SnapshotAudit]]:
    audits: list[SnapshotAudit] = []

    async def factory() -> Storage:
        audit = SnapshotAudit(make())
        audits.append(audit)
        return audit

    return factory, audits


def _assert_rows_are_folds(audit: SnapshotAudit, result: SimulationResult) -> None:
    mismatches = run_virtual(audit.verify_all)
    assert mismatches == [], "\n".join(mismatches[:10])
    # Not vacuous: every attempt was made on a claimed row, and each claim was audited.
    attempted = any(isinstance(r.event, AttemptSucceeded | AttemptFailed) for r in result.log)
    assert audit.audited.get("claim", 0) > 0 or not attempted, audit.audited
    assert audit.audited.get("endpoint", 0) > 0, audit.audited


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(seed=seeds)
def test_every_row_handed_out_is_the_fold_of_its_stream_in_memory(seed: int) -> None:
    """On the memory store, each row given to a decider, and every row at the end, is the
    fold of its stream; the audited run is the same run, byte for byte."""
    factory, audits = _audited(MemoryStore)
    result = simulate(seed, factory)
    assert result.violations == []
    _assert_rows_are_folds(audits[0], result)
    assert result.fingerprint() == simulate(seed).fingerprint()


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=seeds)
def test_every_row_handed_out_is_the_fold_of_its_stream_on_sqlite(seed: int, tmp_path: Path) -> None:
    """The same on SQLite, whose projection writes the core's values with plain SQL."""
    from attribution_webhooks.adapters.sql import open_store

    path = tmp_path / f"snapshots-{seed}.sqlite3"
    path.unlink(missing_ok=True)
    factory, audits = _audited(lambda: open_store(f"sqlite:///{path}", inline=True))
    result = simulate(seed, factory)
    assert result.violations == []
    _assert_rows_are_folds(audits[0], result)


def test_the_audit_catches_a_row_that_is_not_the_fold() -> None:
    """A row whose health or state drifted from the log is reported, by the final check and
    when it is handed out."""
    factory, audits = _audited(MemoryStore)
    simulate(3, factory)
    audit = audits[0]
    store = audit.store
    assert isinstance(store, MemoryStore)
    # Corrupt the store's rows behind its back, as a projection bug would.
    failing = next(v for v in store._endpoints.values() if v.failing_since is not None)
    endpoint_id = failing.endpoint.endpoint_id
    store._endpoints[endpoint_id] = evolve(
        failing, failing_since=failing.failing_since + timedelta(seconds=1)
    )
    mismatches = run_virtual(audit.verify_all)
    assert any(f"endpoint {endpoint_id}: failing since" in m for m in mismatches), mismatches

    audit.mismatches.clear()
    store._endpoints[endpoint_id] = evolve(
        failing, endpoint=evolve(failing.endpoint, url="https://elsewhere.example/")
    )
    asyncio.run(audit.endpoint(endpoint_id))
    assert any(f"endpoint {endpoint_id} at version" in m for m in audit.mismatches), audit.mismatches
