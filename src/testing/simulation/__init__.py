"""The deterministic simulation: the real delivery engine against a fake clock and a fake network.

A seed draws a whole scenario: accounts and endpoints with their subscriptions, receivers that
are healthy, flaky, slow, down for a while or dead, a stream of published events, operators
disabling, enabling, deleting, re-subscribing, rotating secrets and redelivering, and engine
crashes (the dispatcher is cancelled mid-flight and restarted after a downtime). It all runs on
``VirtualTimeLoop``, so hours of retries take milliseconds, and the same seed gives the same event
log byte for byte. ``check`` then verifies the invariants on the event log and the network's
record of every request.

Replay one seed::

    python -m attribution_webhooks.testing.simulation --seed 1234 --verbose

The package: ``scenarios`` draws a seed's scenario, ``runner`` runs it, ``invariants`` (over the
checker's own ``model``) checks the result, ``snapshots`` audits that every store's read-model
rows are snapshots of the fold of their streams, and ``cli`` is the command line.
"""

from __future__ import annotations

from .cli import main
from .invariants import check
from .result import Crash, SimulationResult
from .runner import run_scenario, simulate
from .scenarios import Scenario, draw_scenario

__all__ = [
    "Crash",
    "Scenario",
    "SimulationResult",
    "check",
    "draw_scenario",
    "main",
    "run_scenario",
    "simulate",
]
