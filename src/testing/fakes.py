"""Deterministic stand-ins for the ports: clocks, ids, randomness and the network."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from attrs import define, field

from ..core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from ..core.ports import OutboundRequest

__all__ = [
    "EPOCH",
    "FakeClock",
    "FakeNetwork",
    "LoopClock",
    "Route",
    "SeededRandom",
    "SentRequest",
    "SequentialIds",
]

EPOCH = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


class LoopClock:
    """The running loop's time as a UTC datetime, ``start`` at loop time 0.

    On ``VirtualTimeLoop`` this is virtual time; sleeping is asyncio's, so it jumps too.
    """

    def __init__(self, start: datetime = EPOCH) -> None:
        self.start = start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=asyncio.get_running_loop().time())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to, and never backwards. ``sleep`` advances it."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("the fake clock does not go backwards")
        self._now += delta

    def set(self, moment: datetime) -> None:
        self.advance(moment - self._now)

    async def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)


class SequentialIds:
    """``prefix_000001``, ``prefix_000002``, …: one counter for every prefix, so ids sort by creation."""

    def __init__(self) -> None:
        self._count = 0

    def new_id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count:08d}"


class SeededRandom:
    """A ``RandomSource`` drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def random(self) -> float:
        return self._random.random()

    def token_bytes(self, size: int) -> bytes:
        return self._random.randbytes(size)


# --- the network ---------------------------------------------------------------------------------

#: Failure modes a simulated receiver can show: an HTTP status, or a network error.
FAILURES: tuple[str, ...] = ("500", "503", "429", "301", "timeout", "refused", "reset")


@define
class Route:
    """How one simulated receiver behaves.

    While up, each request fails with probability ``failure_rate`` in one of ``failures``;
    during an outage (a half-open interval of times) every request fails with ``outage_failure``.
    A latency at or beyond the request's timeout is a read timeout.
    """

    latency: tuple[float, float] = (0.005, 0.05)
    failure_rate: float = 0.0
    failures: Sequence[str] = ("500",)
    outages: Sequence[tuple[datetime, datetime]] = ()
    outage_failure: str = "refused"
    retry_after: float | None = 120.0

    def is_down(self, at: datetime) -> bool:
        return any(start <= at < end for start, end in self.outages)


@define
class SentRequest:
    """A request the fake network received; ``outcome`` stays None if the sender gave up (crashed)."""

    started_at: datetime
    url: str
    headers: dict[str, str]
    body: bytes
    outcome: Outcome | None = None
    finished_at: datetime | None = None

    @property
    def delivered(self) -> bool:
        return isinstance(self.outcome, HttpResponse) and 200 <= self.outcome.status < 300


@define
class FakeNetwork:
    """A ``Transport`` over simulated receivers, keyed by URL; unknown URLs refuse connections."""

    clock: LoopClock | FakeClock
    rng: random.Random
    routes: dict[str, Route] = field(factory=dict)
    requests: list[SentRequest] = field(factory=list)

    async def send(self, request: OutboundRequest) -> Outcome:
        started_at = self.clock.now()
        sent = SentRequest(started_at, request.url, dict(request.headers), request.body)
        self.requests.append(sent)
        route = self.routes.get(request.url)
        if route is None:
            mode, latency = "refused", 0.001
        else:
            latency = self.rng.uniform(*route.latency)
            if route.is_down(started_at):
                mode = route.outage_failure
            elif route.failure_rate and self.rng.random() < route.failure_rate:
                mode = self.rng.choice(list(route.failures))
            else:
                mode = "200"
        timeout = request.timeout.total_seconds()
        if mode == "timeout" or latency >= timeout:
            await self.clock.sleep(timeout)
            outcome: Outcome = TransportFailure(
                ErrorKind.READ_TIMEOUT, timedelta(seconds=timeout), "read timed out"
            )
        else:
            await self.clock.sleep(latency)
            outcome = _answer(mode, timedelta(seconds=latency), route)
        sent.outcome = outcome
        sent.finished_at = self.clock.now()
        return outcome


def _answer(mode: str, elapsed: timedelta, route: Route | None) -> Outcome:
    if mode == "refused":
        return TransportFailure(ErrorKind.CONNECTION_REFUSED, elapsed, "connection refused")
    if mode == "reset":
        return TransportFailure(ErrorKind.CONNECTION_RESET, elapsed, "connection reset by peer")
    status = int(mode)
    retry_after = None
    if status in (429, 503) and route is not None and route.retry_after is not None:
        retry_after = timedelta(seconds=route.retry_after)
    body = "OK" if status == 200 else f"simulated {status}"
    return HttpResponse(status, elapsed, body, retry_after)
