"""The deterministic simulation: hundreds of seeded scenarios against the invariants.

A failing seed is printed with the command that replays it:
    python -m attribution_webhooks.testing.simulation --seed N --verbose
The slow run (``pytest -m slow``) covers many thousands of seeds.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from attrs import evolve

from attribution_webhooks.core.events import AttemptFailed, AttemptSucceeded, EventPublished, RetryScheduled
from attribution_webhooks.core.ports import RecordedEvent
from attribution_webhooks.testing.simulation import SimulationResult, check, simulate

DEFAULT_SEEDS = int(os.environ.get("SIMULATION_SEEDS", "400"))
SLOW_SEEDS = int(os.environ.get("SIMULATION_SLOW_SEEDS", "10000"))
CHUNK = 50


def _failures(seeds: range) -> list[str]:
    failures = []
    for seed in seeds:
        result = simulate(seed)
        if result.violations:
            shown = "\n    ".join(result.violations[:5])
            failures.append(
                f"seed {seed}: {len(result.violations)} violations; replay with\n"
                f"  python -m attribution_webhooks.testing.simulation --seed {seed} --verbose\n    {shown}"
            )
    return failures


@pytest.mark.parametrize("first", range(0, DEFAULT_SEEDS, CHUNK), ids=lambda first: f"seeds {first}+")
def test_every_invariant_holds(first: int) -> None:
    """Every seeded scenario (faults, outages, crashes, operators) keeps every invariant."""
    failures = _failures(range(first, min(first + CHUNK, DEFAULT_SEEDS)))
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("first", range(DEFAULT_SEEDS, SLOW_SEEDS, 500), ids=lambda first: f"seeds {first}+")
def test_every_invariant_holds_for_many_more_seeds(first: int) -> None:
    """The long run: thousands of further seeds."""
    failures = _failures(range(first, min(first + 500, SLOW_SEEDS)))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", [3, 12, 70, 304])
def test_the_same_seed_gives_the_same_run(seed: int) -> None:
    """Byte for byte: the event log and every request are identical on a second run."""
    assert simulate(seed).fingerprint() == simulate(seed).fingerprint()


def test_seeds_exercise_the_hard_cases() -> None:
    """The scenarios are not all sunny: across the default seeds there are crashes, retries to
    exhaustion, held and cancelled deliveries, automatic disabling and in-flight cancellations."""
    seen: dict[str, int] = {}
    for seed in range(100):
        result = simulate(seed)
        names = {type(recorded.event).__name__ for recorded in result.log}
        for name in (
            names
            | ({"crash"} if result.crashes else set())
            | ({"two workers"} if result.scenario.workers > 1 else set())
        ):
            seen[name] = seen.get(name, 0) + 1
        if any("FAILING" in repr(recorded.event) for recorded in result.log):
            seen["auto-disabled"] = seen.get("auto-disabled", 0) + 1
    for case in (
        "crash",
        "two workers",
        "DeliveryFailed",
        "DeliveryHeld",
        "DeliveryReleased",
        "DeliveryCancelled",
        "RedeliveryRequested",
        "SecretRotated",
        "auto-disabled",
    ):
        assert seen.get(case, 0) >= 3, f"only {seen.get(case, 0)} of 100 seeds have {case}: {seen}"


# --- the checker itself must be able to fail --------------------------------------------------------


def _tampered(result: SimulationResult, change: object) -> list[str]:
    log = list(result.log)
    for index, recorded in enumerate(log):
        replaced = change(recorded.event)  # type: ignore[operator]
        if replaced is not None:
            log[index] = RecordedEvent(recorded.position, recorded.stream_id, recorded.version, replaced)
            break
    else:
        pytest.fail("nothing to tamper with")
    return check(evolve(result, log=log))


@pytest.fixture(scope="module")
def baseline() -> SimulationResult:
    result = simulate(3)
    assert result.violations == []
    return result


def test_checker_catches_a_retry_off_schedule(baseline: SimulationResult) -> None:
    """A retry due a second late breaks 'attempt times match the retry policy to the second'."""
    violations = _tampered(
        baseline,
        lambda e: (
            evolve(e, due_at=e.due_at + timedelta(seconds=2)) if isinstance(e, RetryScheduled) else None
        ),
    )
    assert any("policy says" in v for v in violations), violations


def test_checker_catches_a_misreported_attempt(baseline: SimulationResult) -> None:
    """Logging a failure as a success is caught against the network's record."""
    violations = _tampered(
        baseline,
        lambda e: (
            AttemptSucceeded(e.delivery_id, e.endpoint_id, e.attempt, e.started_at, e.elapsed_ms, 200, "")
            if isinstance(e, AttemptFailed)
            else None
        ),
    )
    assert any("the network said" in v for v in violations), violations


def test_checker_catches_an_unlogged_request(baseline: SimulationResult) -> None:
    """A request the receiver saw but the log lacks is reported."""
    log = [r for r in baseline.log if not isinstance(r.event, AttemptSucceeded)][:]
    violations = check(evolve(baseline, log=log))
    assert any("not in the delivery log" in v for v in violations), violations


def test_checker_catches_a_request_to_a_disabled_endpoint(baseline: SimulationResult) -> None:
    """A request sent while its endpoint is disabled is reported."""
    requests = list(baseline.requests)
    late = requests[0]
    from attribution_webhooks.core.events import DisableReason, EndpointDisabled

    endpoint_id = next(
        r.event.delivery_id and r.event.endpoint_id
        for r in baseline.log
        if isinstance(r.event, AttemptSucceeded | AttemptFailed) and r.event.started_at == late.started_at
    )
    disabled = EndpointDisabled(endpoint_id, DisableReason.MANUAL, late.started_at - timedelta(seconds=1))
    log = [*baseline.log, RecordedEvent(len(baseline.log) + 1, endpoint_id, 99, disabled)]
    violations = check(evolve(baseline, log=log))
    assert any("went to a disabled endpoint" in v for v in violations), violations


# --- the same engine over the SQLite store ----------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 12, 27, 70, 112])
def test_the_simulation_holds_on_sqlite(seed: int, tmp_path: Path) -> None:
    """The durable store behaves like the reference: same invariants, same event log."""
    from attribution_webhooks.adapters.sql import open_store

    async def sqlite_store():  # type: ignore[no-untyped-def]
        return open_store(f"sqlite:///{tmp_path / 'sim.sqlite3'}", inline=True)

    on_sqlite = simulate(seed, sqlite_store)
    assert on_sqlite.violations == []
    assert on_sqlite.fingerprint() == simulate(seed).fingerprint()


@pytest.fixture(scope="module")
def with_notices() -> SimulationResult:
    """A run with every kind of operational notice (ADR 0017)."""
    result = simulate(12)
    assert result.violations == []
    assert {"delivery.exhausted", "webhook.failing", "webhook.disabled"} <= {
        r.event.event_type for r in result.log if isinstance(r.event, EventPublished)
    }
    return result


def _without_first(result: SimulationResult, event_type: str) -> list[str]:
    log = list(result.log)
    [index] = [
        i
        for i, r in enumerate(log)
        if isinstance(r.event, EventPublished) and r.event.event_type == event_type
    ][:1]
    return check(evolve(result, log=log[:index] + log[index + 1 :]))


def test_checker_catches_a_missing_exhausted_notice(with_notices: SimulationResult) -> None:
    """Dropping a delivery.exhausted breaks 'every exhausted delivery has exactly one notice'."""
    violations = _without_first(with_notices, "delivery.exhausted")
    assert any(v.startswith("exhausted") and "1 causes, 0 notices" in v for v in violations), violations


def test_checker_catches_a_missing_disabled_notice(with_notices: SimulationResult) -> None:
    """Dropping a webhook.disabled breaks 'every disabling has exactly one notice'."""
    violations = _without_first(with_notices, "webhook.disabled")
    assert any(v.startswith("disabled") and "1 causes, 0 notices" in v for v in violations), violations


def test_checker_catches_a_notice_about_a_notice(with_notices: SimulationResult) -> None:
    """A delivery.exhausted about a notice's delivery breaks 'no notice about notices'."""

    def about_a_notice(event: object) -> object | None:
        if not isinstance(event, EventPublished) or event.event_type != "delivery.exhausted":
            return None
        body = json.loads(event.body)
        body["data"]["eventType"] = "webhook.failing"
        return evolve(event, body=json.dumps(body))

    violations = _tampered(with_notices, about_a_notice)
    assert any("notice about the exhaustion of a notice" in v for v in violations), violations


def test_checker_catches_a_failing_notice_within_the_cool_down(with_notices: SimulationResult) -> None:
    """A second webhook.failing a minute after the first breaks the cool-down."""
    log = list(with_notices.log)
    [first] = [
        r for r in log if isinstance(r.event, EventPublished) and r.event.event_type == "webhook.failing"
    ][:1]
    assert isinstance(first.event, EventPublished)
    again = evolve(
        first.event,
        event_id=first.event.event_id + "_again",
        published_at=first.event.published_at + timedelta(minutes=1),
    )
    tampered = [*log, RecordedEvent(log[-1].position + 1, "event:x:again", 1, again)]
    violations = check(evolve(with_notices, log=tampered))
    assert any("within the cool-down" in v for v in violations), violations
