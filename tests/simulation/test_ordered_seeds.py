"""Ordered delivery in the simulation (ADR 0016): the seeds use it, the memory and SQLite stores
agree on it, and the ordering checker can fail."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from attrs import evolve

from attribution_webhooks.core.events import DeliveryScheduled
from attribution_webhooks.core.ports import RecordedEvent, Storage
from attribution_webhooks.testing.simulation import SimulationResult, check, simulate
from attribution_webhooks.testing.simulation.model import Record
from attribution_webhooks.testing.simulation.ordering import Lines, Place
from attribution_webhooks.testing.simulation.scenarios import draw_scenario

ORDERED_SEED = 16  # an ordered endpoint whose line of 28 mostly waited behind failing heads


@pytest.fixture(scope="module")
def ordered_run() -> SimulationResult:
    result = simulate(ORDERED_SEED)
    assert result.violations == []
    return result


def _waiting_place(result: SimulationResult) -> tuple[Lines, Place]:
    """A delivery of a line that had to wait for the one ahead of it, and the lines."""
    lines = Lines.of(Record.of(result))
    for line in lines.lines.values():
        for place in line[1:]:
            if place.head_since is not None and place.head_since > place.joined_at:
                return lines, place
    raise AssertionError("no delivery waited in line")


def test_a_third_of_the_seeds_deliver_in_order() -> None:
    """The knob is on in about a third of the seeds, sometimes with the setting switched."""
    scenarios = [draw_scenario(seed) for seed in range(300)]
    ordered = [s for s in scenarios if any(plan.ordered for plan in s.endpoints)]
    switched = [s for s in scenarios if any(action.kind == "order" for action in s.actions)]
    assert 60 <= len(ordered) <= 140
    assert len(switched) >= 20


def test_the_line_waited_in_the_ordered_run(ordered_run: SimulationResult) -> None:
    """The chosen seed really holds deliveries back: most of its line waited behind a head."""
    lines, place = _waiting_place(ordered_run)
    line = lines.lines[place.endpoint_id]
    assert sum(p.head_since is not None and p.head_since > p.joined_at for p in line) >= 10


def test_checker_catches_a_delivery_that_jumps_the_line(ordered_run: SimulationResult) -> None:
    """A request of a waiting delivery moved before the head ahead of it finished is reported."""
    _, place = _waiting_place(ordered_run)
    assert place.head_since is not None
    requests = list(ordered_run.requests)
    index = next(
        i for i, sent in enumerate(requests) if sent.headers["X-Attribution-Delivery-Id"] == place.delivery_id
    )
    early = place.head_since - timedelta(milliseconds=1)
    requests[index] = evolve(requests[index], started_at=max(early, place.joined_at))
    violations = check(evolve(ordered_run, requests=requests))
    assert any("ahead of it in line" in v for v in violations), violations


def test_checker_catches_a_delivery_left_out_of_the_line(ordered_run: SimulationResult) -> None:
    """A delivery scheduled to an ordered endpoint but not in its line is reported."""
    log = list(ordered_run.log)
    index = next(i for i, r in enumerate(log) if isinstance(r.event, DeliveryScheduled) and r.event.ordered)
    recorded = log[index]
    log[index] = RecordedEvent(
        recorded.position, recorded.stream_id, recorded.version, evolve(recorded.event, ordered=False)
    )
    violations = check(evolve(ordered_run, log=log))
    assert any("setting then says True" in v for v in violations), violations


@pytest.mark.parametrize("seed", [ORDERED_SEED, 34, 60])
def test_ordered_seeds_hold_on_sqlite(seed: int, tmp_path: Path) -> None:
    """The SQL store's lines (parked rows, promotions) give the memory store's run exactly."""
    from attribution_webhooks.adapters.sql import open_store

    async def sqlite_store() -> Storage:
        return open_store(f"sqlite:///{tmp_path / 'sim.sqlite3'}", inline=True)

    on_sqlite = simulate(seed, sqlite_store)
    assert on_sqlite.violations == []
    assert on_sqlite.fingerprint() == simulate(seed).fingerprint()
