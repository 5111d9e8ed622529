"""Fakes and the deterministic simulator, for this project's tests and for services embedding the core.

- ``VirtualTimeLoop``: an asyncio loop whose clock jumps to the next timer when every task waits.
- ``LoopClock`` / ``FakeClock``: clocks for it, and for plain unit tests.
- ``FakeNetwork``: a Transport with scripted, seeded-random receivers that records every request.
- ``SequentialIds``, ``SeededRandom``: deterministic id and random sources.
- ``simulation``: the seeded end-to-end simulation and its invariants.
"""

from .fakes import FakeClock, FakeNetwork, LoopClock, Route, SeededRandom, SentRequest, SequentialIds
from .loop import SimulationDeadlock, SimulationLivelock, VirtualTimeLoop, run_virtual

__all__ = [
    "FakeClock",
    "FakeNetwork",
    "LoopClock",
    "Route",
    "SeededRandom",
    "SentRequest",
    "SequentialIds",
    "SimulationDeadlock",
    "SimulationLivelock",
    "VirtualTimeLoop",
    "run_virtual",
]
