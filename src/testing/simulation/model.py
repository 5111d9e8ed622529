"""The checker's own model of what an endpoint was at any moment, and the run indexed for checks.

The checker keeps its own model of endpoints and retries instead of reusing the core's evolve
functions and retry policy, so that a bug there cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs
from attrs import define, field

from ...core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DomainEvent,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    SecretRotated,
    time_of,
)
from ..fakes import SentRequest
from .result import SimulationResult

__all__ = ["EndpointHistory", "Record", "Subscription", "replay"]


@define
class Subscription:
    """What the checker believes an endpoint was at some moment."""

    account: str = ""
    url: str = ""
    types: tuple[str, ...] = ()
    status: str = "new"
    secret: str = ""
    previous: str | None = None
    previous_until: datetime | None = None
    standard: bool = False
    ordered: bool = False

    def secrets_at(self, moment: datetime) -> list[str]:
        valid = [self.secret]
        if self.previous is not None and self.previous_until is not None and moment < self.previous_until:
            valid.append(self.previous)
        return valid


def replay(events: Sequence[EndpointEvent]) -> Subscription:
    sub = Subscription()
    for event in events:
        if isinstance(event, EndpointRegistered):
            sub = Subscription(
                event.account_id,
                event.url,
                event.event_types,
                "enabled",
                event.secret,
                None,
                None,
                event.standard_webhooks,
                event.ordered,
            )
        elif isinstance(event, EndpointUpdated):
            sub.url = event.url if event.url is not None else sub.url
            sub.types = event.event_types if event.event_types is not None else sub.types
            sub.standard = event.standard_webhooks if event.standard_webhooks is not None else sub.standard
            sub.ordered = event.ordered if event.ordered is not None else sub.ordered
        elif isinstance(event, SecretRotated):
            sub.previous, sub.previous_until, sub.secret = sub.secret, event.previous_expires_at, event.secret
        elif isinstance(event, EndpointDisabled):
            sub.status = "disabled"
        elif isinstance(event, EndpointEnabled):
            sub.status = "enabled"
        elif isinstance(event, EndpointDeleted):
            sub.status = "deleted"
    return sub


@define
class EndpointHistory:
    """An endpoint's events with their global positions, to ask what it was at any moment."""

    events: list[tuple[int, EndpointEvent]] = field(factory=list)

    def before(self, position: int) -> Subscription:
        return replay([event for pos, event in self.events if pos < position])

    def at(self, moment: datetime) -> Subscription:
        return replay([event for _, event in self.events if time_of(event) <= moment])

    def final(self) -> Subscription:
        return replay([event for _, event in self.events])

    def disabled_between(self, start: datetime, end: datetime) -> bool:
        """Was it disabled or deleted at any moment in [start, end]?"""
        if self.at(start).status != "enabled":
            return True
        return any(
            isinstance(event, EndpointDisabled | EndpointDeleted) and start <= time_of(event) <= end
            for _, event in self.events
        )


@define
class Record:
    """The run, indexed for the checks."""

    result: SimulationResult
    histories: dict[str, EndpointHistory] = field(factory=dict)
    published: dict[str, EventPublished] = field(factory=dict)
    streams: dict[str, list[tuple[int, DomainEvent]]] = field(factory=dict)
    requests: dict[tuple[str, int], list[SentRequest]] = field(factory=dict)

    @classmethod
    def of(cls, result: SimulationResult) -> Record:
        record = cls(result)
        for recorded in result.log:
            event = recorded.event
            if isinstance(event, EndpointEvent.__args__):
                history = record.histories.setdefault(event.endpoint_id, EndpointHistory())
                if isinstance(event, EndpointRegistered | SecretRotated) and event.secret == "":
                    # Shredded in the log: the checker still knows what was issued.
                    nth = sum(isinstance(e, EndpointRegistered | SecretRotated) for _, e in history.events)
                    event = attrs.evolve(event, secret=result.issued_secrets[event.endpoint_id][nth])
                history.events.append((recorded.position, event))
            elif isinstance(event, EventPublished):
                record.published[f"{event.account_id}/{event.event_id}"] = event
            else:
                record.streams.setdefault(recorded.stream_id, []).append((recorded.position, event))
        for sent in result.requests:
            key = (sent.headers["X-Attribution-Delivery-Id"], int(sent.headers["X-Attribution-Attempt"]))
            record.requests.setdefault(key, []).append(sent)
        return record

    def sent(self, delivery_id: str, attempt: AttemptSucceeded | AttemptFailed) -> SentRequest | None:
        for sent in self.requests.get((delivery_id, attempt.attempt), []):
            if sent.started_at == attempt.started_at and sent.outcome is not None:
                return sent
        return None
