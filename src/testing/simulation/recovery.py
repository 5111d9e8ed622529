"""The crash-recovery invariant (issue 10.8): a crash loses an outcome, never an attempt number."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime

from ...core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    RedeliveryRequested,
    time_of,
)
from .model import Record

__all__ = ["check_lost_attempts"]


def check_lost_attempts(record: Record) -> list[str]:
    """Each attempt number goes on the wire once per attempt sequence, and a request whose
    outcome was never logged is in the log as abandoned once its delivery is attempted again."""
    violations: list[str] = []
    for delivery_id, events in record.streams.items():
        redeliveries = sorted(time_of(e) for _, e in events if isinstance(e, RedeliveryRequested))

        def sequence(at: datetime, redeliveries: list[datetime] = redeliveries) -> int:
            return bisect_right(redeliveries, at)

        logged = {
            (sequence(time_of(e)), e.attempt): e
            for _, e in events
            if isinstance(e, AttemptSucceeded | AttemptFailed | AttemptAbandoned)
        }
        sent = sorted(
            (request.started_at, attempt, request)
            for (d, attempt), requests in record.requests.items()
            if d == delivery_id
            for request in requests
        )
        seen: set[tuple[int, int]] = set()
        for index, (started_at, attempt, _request) in enumerate(sent):
            key = (sequence(started_at), attempt)
            if key in seen:
                violations.append(f"delivery {delivery_id}: attempt {attempt} sent twice in one sequence")
            seen.add(key)
            later = any(sequence(t) == key[0] for t, _, _ in sent[index + 1 :])
            if later and key not in logged:
                violations.append(f"delivery {delivery_id}: lost attempt {attempt} is not in the log")
    return violations
