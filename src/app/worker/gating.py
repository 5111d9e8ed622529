"""The dispatcher's side of the flow policies (ADR 0015): which claimed deliveries of rate-limited
endpoints, and of endpoints whose breaker is open, may start now, and when the others are offered
again. The rule is ``core.flow.admit``; the store applies it to the endpoints' shared state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from attrs import frozen

from ...core import flow
from ...core.ports import FlowGates
from ...core.views import EndpointView
from .recorder import Job

__all__ = ["Gating"]


@frozen
class Gating:
    store: FlowGates
    rules: flow.BreakerRules

    @staticmethod
    def applies(view: EndpointView) -> bool:
        """Whether the endpoint's deliveries must be admitted first: it has a rate limit, or its
        breaker is open. (Every other endpoint costs nothing more than before.)"""
        endpoint = view.endpoint
        return endpoint.rate_limit is not None or endpoint.circuit_breaker_opened_at is not None

    @staticmethod
    def ask(view: EndpointView, wanted: int) -> flow.Ask:
        endpoint = view.endpoint
        opened_at = endpoint.circuit_breaker_opened_at
        probe = (
            None
            if opened_at is None
            else flow.Probe(opened_at, endpoint.circuit_breaker_failures, view.failures)
        )
        return flow.Ask(wanted, endpoint.rate(), probe)

    async def admit(
        self, gated: Mapping[str, Sequence[Job]], room: Mapping[str, int], now: datetime
    ) -> tuple[list[Job], list[tuple[Job, datetime | None]]]:
        """The jobs that may start at ``now``, and the others with the time to offer each again
        (None: they found no free slot of their endpoint, the caller paces them as it does any
        other). At most ``room[endpoint]`` of an endpoint's jobs are asked for."""
        asks: dict[str, flow.Ask] = {}
        for endpoint_id, jobs in gated.items():
            view = jobs[0].endpoint
            assert view is not None
            asks[endpoint_id] = self.ask(view, min(len(jobs), room.get(endpoint_id, 0)))
        admissions = await self.store.admit(asks, now, self.rules)
        admitted: list[Job] = []
        returns: list[tuple[Job, datetime | None]] = []
        for endpoint_id, jobs in gated.items():
            ask, admission = asks[endpoint_id], admissions[endpoint_id]
            admitted += jobs[: admission.admitted]
            rest = jobs[admission.admitted :]
            if admission.again_at is None:  # every job asked for went; the rest found no slot
                returns += [(job, None) for job in rest]
                continue
            # Behind an open breaker only one goes at a time: the first waits for the next
            # probe, the others further (a closing breaker makes them due at once: ``wake``).
            park = self.rules.max_probe_interval if ask.probe is not None else timedelta(0)
            returns += list(zip(rest, admission.returns(len(rest), park), strict=True))
        return admitted, returns
