"""What a run leaves behind: its event log, the network's record of every request, its crashes."""

from __future__ import annotations

import hashlib
from datetime import datetime

from attrs import define, field, frozen

from ...core.ports import RecordedEvent
from ..fakes import SentRequest
from .scenarios import Scenario

__all__ = ["Crash", "SimulationResult"]


@frozen
class Crash:
    """A worker was down from ``at`` to ``back_at``: crashed, or stopping gracefully to restart."""

    at: datetime
    back_at: datetime
    graceful: bool = False


@define
class SimulationResult:
    scenario: Scenario
    log: list[RecordedEvent]
    requests: list[SentRequest]
    crashes: list[Crash]
    endpoint_ids: dict[int, str]
    settled: bool
    violations: list[str] = field(factory=list)
    # Each endpoint's secrets as the service issued them, in order: the log keeps only the live
    # ones (a secret that stopped signing reads as "", ADR 0010), the checker needs them all.
    issued_secrets: dict[str, list[str]] = field(factory=dict)
    #: What purging every finished thing at the end of the run found wrong (``retention.py``).
    retention_violations: list[str] = field(factory=list)

    def fingerprint(self) -> str:
        """A digest of the whole event log and request record: equal runs, equal digests."""
        digest = hashlib.sha256()
        for recorded in self.log:
            digest.update(repr(recorded).encode())
        for sent in self.requests:
            digest.update(repr((sent.started_at, sent.url, sent.body, sent.outcome)).encode())
        return digest.hexdigest()
