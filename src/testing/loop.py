"""An asyncio event loop on virtual time, after trio's MockClock.

Time only moves forward, and only when every task is waiting: then it jumps straight to the
next timer. Hours of retries run in milliseconds, and a run depends on nothing but its inputs.
There is no real I/O on this loop; waiting with no timer left is a deadlock and raises.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["SimulationDeadlock", "SimulationLivelock", "VirtualTimeLoop", "run_virtual"]

T = TypeVar("T")


class SimulationDeadlock(RuntimeError):
    """Every task waits and no timer is set: nothing can ever happen again."""


class SimulationLivelock(RuntimeError):
    """Tasks keep running without ever letting virtual time pass: a busy loop."""


#: Loop iterations allowed at one instant of virtual time before it counts as a livelock.
MAX_STEPS_PER_INSTANT = 200_000
#: Loop iterations allowed in one run: a simulation that needs more is spinning.
MAX_STEPS = 5_000_000


class _SelectorMap(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, keys: dict[int, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys[fileobj if isinstance(fileobj, int) else fileobj.fileno()]

    def __iter__(self) -> Any:
        return iter(self._keys)


class _VirtualSelector(selectors.BaseSelector):
    """Keeps registrations (the loop registers its self-pipe) but never waits on them."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._advance = advance
        self._steps_at_this_instant = 0
        self._steps = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj if isinstance(fileobj, int) else fileobj.fileno())

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise SimulationLivelock(f"{MAX_STEPS} loop steps in one run: something is spinning")
        if timeout is None:
            raise SimulationDeadlock("every task is waiting and no timer is set")
        if timeout > 0:
            self._advance(timeout)
            self._steps_at_this_instant = 0
        else:
            self._steps_at_this_instant += 1
            if self._steps_at_this_instant > MAX_STEPS_PER_INSTANT:
                raise SimulationLivelock(f"{MAX_STEPS_PER_INSTANT} loop steps without time passing")
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return _SelectorMap(self._keys)

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``loop.time()`` starts at 0 and advances only by jumping to the next timer."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self._advance))

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())
