"""The invariants: what every run must satisfy, checked on its event log and the network's record.

Each check returns readable sentences, one per violation; ``check`` gathers them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

from ...core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    DisableReason,
    DomainEvent,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointRegistered,
    EventPublished,
    RedeliveryRequested,
    RetryScheduled,
)
from ...core.outcomes import HttpResponse, TransportFailure
from ...core.retry import RetryPolicy
from ..fakes import SentRequest
from .flow_checks import breaker_open_at_end, breaker_open_between, check_flow, rate_limited
from .model import Record, Subscription
from .notices import check_notices, notice_subject
from .ordering import Lines, check_ordering
from .recovery import check_lost_attempts
from .result import Crash, SimulationResult
from .scenarios import offset

__all__ = ["TOLERANCE", "check"]

TOLERANCE = timedelta(seconds=1)  # "to the second"


def check(result: SimulationResult) -> list[str]:
    """Every invariant violated by the run, as readable sentences (empty: all hold)."""
    record = Record.of(result)
    violations: list[str] = []
    if not result.settled:
        violations.append("the system did not settle within two days of the last action")
    violations += _check_fan_out(record)
    lines = Lines.of(record)
    for delivery_id, events in record.streams.items():
        violations += _check_delivery(record, lines, delivery_id, events)
    violations += _check_requests(record)
    violations += _check_held(record)
    violations += _check_auto_disable(record)
    violations += check_lost_attempts(record)
    violations += check_notices(record)
    violations += check_ordering(record, lines)
    violations += check_flow(record)
    violations += result.retention_violations
    return violations


def _check_fan_out(record: Record) -> list[str]:
    """Each event is owed to exactly the endpoints subscribed to its type when it was published;
    to a disabled one, as a held delivery."""
    violations: list[str] = []
    log = record.result.log
    for index, recorded in enumerate(log):
        event = recorded.event
        if not isinstance(event, EventPublished):
            continue
        scheduled: dict[str, bool] = {}
        for following in log[index + 1 :]:
            if (
                not isinstance(following.event, DeliveryScheduled)
                or following.event.event_id != event.event_id
            ):
                break
            scheduled[following.event.endpoint_id] = following.event.held
        if event.test:
            if len(scheduled) != 1:
                violations.append(f"test event {event.event_id} went to {len(scheduled)} endpoints, not one")
            continue
        expected = {}
        about = notice_subject(event)  # a notice never goes to the endpoint it is about
        for endpoint_id, history in record.histories.items():
            sub = history.before(recorded.position)
            if (
                sub.status in ("enabled", "disabled")
                and sub.account == event.account_id
                and event.event_type in sub.types
                and endpoint_id != about
            ):
                expected[endpoint_id] = sub.status == "disabled"
        if scheduled != expected:
            violations.append(
                f"event {event.event_id} fanned out to {scheduled}, expected {expected} (id: held)"
            )
    return violations


def _crashed_during(crashes: Sequence[Crash], start: datetime, end: datetime) -> bool:
    return any(crash.at <= end and crash.back_at >= start for crash in crashes)


def _expected_delay(policy: RetryPolicy, attempt: int, sent: SentRequest) -> tuple[timedelta, timedelta]:
    """The bounds of the wait after failed attempt ``attempt``, by the spec's schedule
    (1 min, 5 min, 15 min, 1 h), the jitter, and a 429/503's Retry-After up to its cap."""
    spec = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
    delay = spec[attempt - 1]
    low, high = delay * (1 - policy.jitter), delay * (1 + policy.jitter)
    outcome = sent.outcome
    if isinstance(outcome, HttpResponse) and outcome.status in (429, 503) and outcome.retry_after is not None:
        floor = min(outcome.retry_after, policy.retry_after_cap)
        low, high = max(low, floor), max(high, floor)
    return low, high


def _check_delivery(
    record: Record, lines: Lines, delivery_id: str, events: list[tuple[int, DomainEvent]]
) -> list[str]:
    """Attempts follow the retry policy to the second, in order, and never after the end;
    every logged attempt is the request the network saw, with its outcome. A delivery in an
    ordered endpoint's line is due no earlier than when it came to head the line."""
    violations: list[str] = []
    scenario = record.result.scenario
    max_attempts = 5
    first = events[0][1]
    assert isinstance(first, DeliveryScheduled)
    history = record.histories[first.endpoint_id]
    where = f"delivery {delivery_id}"
    status = "held" if first.held else "pending"
    attempts = 0
    due_at: datetime | None = None if first.held else first.scheduled_at
    last: tuple[AttemptFailed, SentRequest | None] | None = None
    stopped_at: datetime | None = None  # when it was last held or cancelled
    # A lost attempt (its worker died) counts towards the schedule, but its outcome is unknown,
    # so the delivery is sent again: past the last attempt too, as the re-send of a lost one.
    resending_lost = False
    for _, event in events[1:]:
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            in_flight_when_stopped = (
                status in ("held", "cancelled") and stopped_at is not None and event.started_at <= stopped_at
            )
            if status != "pending" and not in_flight_when_stopped:
                violations.append(f"{where}: attempt {event.attempt} while {status}")
            if event.attempt != attempts + 1:
                violations.append(f"{where}: attempt {event.attempt} after attempt {attempts}")
            if event.attempt > max_attempts and not resending_lost:
                violations.append(f"{where}: attempt {event.attempt}, beyond the spec's {max_attempts}")
            resending_lost = False
            if due_at is not None and not in_flight_when_stopped:
                due = lines.due_from(delivery_id, due_at, event.started_at)
                late = event.started_at - due
                if late < timedelta(0):
                    violations.append(f"{where}: attempt {event.attempt} started {-late} before it was due")
                excused = (
                    not scenario.strict_timing
                    or _crashed_during(record.result.crashes, due, event.started_at)
                    or history.disabled_between(due, event.started_at)
                    # Paced by a rate limit, or held back by an open breaker (ADR 0015).
                    or rate_limited(history) is not None
                    or breaker_open_between(history, due, event.started_at)
                )
                if late > TOLERANCE and not excused:
                    violations.append(f"{where}: attempt {event.attempt} started {late} after it was due")
            attempts = event.attempt
            sent = record.sent(delivery_id, event)
            if sent is None:
                violations.append(f"{where}: attempt {event.attempt} was logged but never sent")
            elif not _same_outcome(event, sent):
                violations.append(
                    f"{where}: attempt {event.attempt} logged as {event}, the network said {sent.outcome}"
                )
            if isinstance(event, AttemptSucceeded):
                status, due_at, last = "succeeded", None, None
            elif not in_flight_when_stopped:
                last = (event, sent)
        elif isinstance(event, AttemptAbandoned):
            if event.attempt != attempts + 1:
                violations.append(f"{where}: abandoned attempt {event.attempt} after attempt {attempts}")
            attempts = event.attempt
            resending_lost = True
        elif isinstance(event, RetryScheduled):
            if last is None or event.attempt != attempts + 1:
                violations.append(
                    f"{where}: retry {event.attempt} scheduled without a failed attempt {attempts}"
                )
            elif last[1] is not None and last[1].finished_at is not None:
                low, high = _expected_delay(scenario.retry, attempts, last[1])
                delay = event.due_at - last[1].finished_at
                slack = timedelta(microseconds=2)
                if not low - slack <= delay <= high + slack:
                    violations.append(
                        f"{where}: attempt {event.attempt} due {delay} after attempt {attempts} failed, "
                        f"the policy says {low}..{high}"
                    )
            status, due_at, last = "pending", event.due_at, None
        elif isinstance(event, DeliveryFailed):
            if attempts < max_attempts or last is None:
                violations.append(
                    f"{where}: failed after {attempts} attempts, not {max_attempts} failed ones"
                )
            status, due_at = "failed", None
        elif isinstance(event, DeliveryHeld):
            if status != "pending":
                violations.append(f"{where}: held while {status}")
            status, due_at, stopped_at = "held", None, event.held_at
        elif isinstance(event, DeliveryReleased):
            if status != "held":
                violations.append(f"{where}: released while {status}")
            status, due_at = "pending", event.released_at
        elif isinstance(event, RedeliveryRequested):
            if status not in ("succeeded", "failed"):
                violations.append(f"{where}: redelivered while {status}")
            status, attempts, due_at = "pending", 0, event.requested_at
        elif isinstance(event, DeliveryCancelled):
            if history.final().status != "deleted":
                violations.append(f"{where}: cancelled although its endpoint was not deleted")
            status, due_at, stopped_at = "cancelled", None, event.cancelled_at
    final = history.final()
    # Behind a head that never finished (held: its endpoint is disabled), the rest of an ordered
    # line waits its turn as it is; the head answers for the line.
    if status == "pending" and not lines.waiting_behind(delivery_id):
        reason = " behind its endpoint's open breaker" if breaker_open_at_end(history) else ""
        violations.append(f"{where} is still pending at the end{reason}")
    if status == "held" and final.status == "enabled":
        violations.append(f"{where} is held although its endpoint is enabled")
    if status in ("pending", "held") and final.status == "deleted":
        violations.append(f"{where} is {status} although its endpoint was deleted")
    return violations


def _same_outcome(event: AttemptSucceeded | AttemptFailed, sent: SentRequest) -> bool:
    outcome = sent.outcome
    if isinstance(outcome, HttpResponse):
        return event.status_code == outcome.status and isinstance(event, AttemptSucceeded) == sent.delivered
    if isinstance(outcome, TransportFailure):
        return isinstance(event, AttemptFailed) and event.error is outcome.kind
    return False


def _check_requests(record: Record) -> list[str]:
    """Every request goes to an enabled endpoint's URL, carries the published body, is signed
    with the secrets valid at that moment, and is in the delivery log unless a crash cut it short."""
    violations: list[str] = []
    logged = {
        (delivery_id, event.attempt, event.started_at)
        for delivery_id, events in record.streams.items()
        for _, event in events
        if isinstance(event, AttemptSucceeded | AttemptFailed)
    }
    for sent in record.result.requests:
        delivery_id = sent.headers["X-Attribution-Delivery-Id"]
        attempt = int(sent.headers["X-Attribution-Attempt"])
        scheduled = record.streams[delivery_id][0][1]
        assert isinstance(scheduled, DeliveryScheduled)
        sub = record.histories[scheduled.endpoint_id].at(sent.started_at)
        where = f"request {delivery_id}#{attempt} at {offset(sent.started_at)}"
        if sub.status != "enabled":
            violations.append(f"{where} went to a {sub.status} endpoint")
        if sent.url != sub.url:
            violations.append(f"{where} went to {sent.url}, not the endpoint's URL {sub.url}")
        event = record.published[f"{scheduled.account_id}/{scheduled.event_id}"]
        if sent.body != event.body.encode():
            violations.append(f"{where} body differs from the published body")
        violations += [f"{where} {problem}" for problem in _signature_problems(sent, sub, event.event_id)]
        if (delivery_id, attempt, sent.started_at) not in logged:
            cut_short = sent.outcome is None or any(
                crash.at == sent.finished_at and not crash.graceful for crash in record.result.crashes
            )
            if not cut_short:
                violations.append(f"{where} finished ({sent.outcome}) but is not in the delivery log")
    return violations


def _signature_problems(sent: SentRequest, sub: Subscription, event_id: str) -> list[str]:
    """Verify as receivers do: the spec's hex HMAC of the raw body, and Standard Webhooks."""
    problems = []
    secrets = sub.secrets_at(sent.started_at)

    def hex_mac(secret: str) -> str:
        return hmac.new(secret.encode(), sent.body, hashlib.sha256).hexdigest()

    if not hmac.compare_digest(sent.headers["X-Attribution-Signature"], hex_mac(secrets[0])):
        problems.append("does not verify with the current secret")
    previous = sent.headers.get("X-Attribution-Signature-Previous")
    if len(secrets) > 1 and previous != hex_mac(secrets[1]):
        problems.append("lacks the previous secret's signature during the grace period")
    if len(secrets) == 1 and previous is not None:
        problems.append("carries a previous-secret signature outside any grace period")
    if sub.standard:
        timestamp = sent.headers["webhook-timestamp"]
        signed = f"{event_id}.{timestamp}.".encode() + sent.body
        expected = []
        for secret in secrets:
            key = base64.b64decode(secret.removeprefix("whsec_"))
            expected.append("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode())
        if sent.headers.get("webhook-signature", "").split(" ") != expected:
            problems.append("has a wrong Standard Webhooks signature")
    elif "webhook-signature" in sent.headers:
        problems.append("has Standard Webhooks headers the endpoint did not ask for")
    return problems


def _check_held(record: Record) -> list[str]:
    """Enabling an endpoint releases every delivery held for it."""
    violations: list[str] = []
    for delivery_id, events in record.streams.items():
        scheduled = events[0][1]
        assert isinstance(scheduled, DeliveryScheduled)
        for position, endpoint_event in record.histories[scheduled.endpoint_id].events:
            if not isinstance(endpoint_event, EndpointEnabled):
                continue
            if _held_before(events, position) and not any(
                isinstance(e, DeliveryReleased | DeliveryCancelled) for pos, e in events if pos > position
            ):
                violations.append(f"delivery {delivery_id} stayed held after its endpoint was enabled")
    return violations


def _held_before(events: list[tuple[int, DomainEvent]], position: int) -> bool:
    held = False
    for pos, event in events:
        if pos >= position:
            break
        if isinstance(event, DeliveryScheduled):
            held = event.held
        elif isinstance(event, DeliveryHeld):
            held = True
        elif isinstance(event, DeliveryReleased | DeliveryCancelled):
            held = False
    return held


def _check_auto_disable(record: Record) -> list[str]:
    """An endpoint is disabled for failing only once every delivery to it has failed for the
    whole period; and one that keeps failing beyond the period does get disabled."""
    violations: list[str] = []
    period = record.result.scenario.auto_disable_after
    attempts_by_endpoint: dict[str, list[tuple[int, AttemptSucceeded | AttemptFailed]]] = {}
    for events in record.streams.values():
        for position, event in events:
            if isinstance(event, AttemptSucceeded | AttemptFailed):
                attempts_by_endpoint.setdefault(event.endpoint_id, []).append((position, event))
    for endpoint_id, history in record.histories.items():
        timeline = sorted(
            [(pos, e) for pos, e in attempts_by_endpoint.get(endpoint_id, [])] + list(history.events),
            key=lambda item: item[0],
        )
        since: datetime | None = None
        overdue: list[AttemptFailed] = []  # failures after the period ran out, while enabled
        enabled = False
        for _, event in timeline:
            if isinstance(event, AttemptSucceeded):
                since, overdue = None, []
            elif isinstance(event, AttemptFailed):
                since = since or event.started_at
                if enabled and event.started_at - since >= period:
                    overdue.append(event)
            elif isinstance(event, EndpointRegistered | EndpointEnabled):
                enabled, since, overdue = True, None, []
            elif isinstance(event, EndpointDisabled):
                enabled, overdue = False, []
                failing = event.reason is DisableReason.FAILING
                if failing and (
                    since is None or event.failing_since != since or event.disabled_at - since < period
                ):
                    violations.append(
                        f"endpoint {endpoint_id} disabled for failing since {event.failing_since} at "
                        f"{offset(event.disabled_at)}; by the log it had failed since {since}"
                    )
            elif isinstance(event, EndpointDeleted):
                enabled, overdue = False, []
        later = [
            f
            for f in overdue[1:]
            if f.started_at >= overdue[0].started_at + timedelta(milliseconds=overdue[0].elapsed_ms)
        ]
        if later:
            violations.append(
                f"endpoint {endpoint_id} kept failing since {since} beyond {period} but was never disabled"
            )
    return violations
