"""How the store's synchronous work reaches its threads: in batches, with appends merged.

Handing one call to a thread and its result back costs 40-100 µs of CPU on this machine (a
queue, a wake-up on each side, the GIL changing hands), more than an indexed read or a small
append. A ``Lane`` hands work over a batch at a time: while one batch runs on the thread, the
jobs that arrive queue up, and they go together as the next batch, with one hand-over each way.
An idle lane starts a job at once (no timer, no added latency), so batches form only under load.

Appends in one batch are committed in one transaction (group commit: see ``appending.py``); each
keeps its own all-or-nothing outcome. Jobs in one batch were all in flight at the same time, so
running the batch's appends together before its other jobs is a valid order for concurrent calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from attrs import define, field

from ...core.ports import StreamAppend

__all__ = ["Job", "Lane"]


@define
class Job:
    """One call for the store's thread: ``call()``, or the ``appends`` of one ``append`` call."""

    call: Callable[[], Any] | None = None
    appends: Sequence[StreamAppend] | None = None
    result: Any = None
    error: BaseException | None = None
    future: asyncio.Future[Any] | None = field(default=None, repr=False)


@define
class Lane:
    """Runs jobs on ``executor`` a batch at a time; ``run_batch`` sets each job's result or error."""

    executor: Executor
    run_batch: Callable[[list[Job]], None]
    _queue: list[Job] = field(factory=list, init=False)
    _drainer: asyncio.Task[None] | None = field(default=None, init=False)

    async def submit(self, job: Job) -> Any:
        """Queue ``job``, and return its result (or raise its error) once its batch has run."""
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        self._queue.append(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[Job] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await loop.run_in_executor(self.executor, self.run_batch, batch)
                except BaseException as error:  # run_batch keeps job errors to itself: this is worse
                    for job in batch:
                        job.error = error
                    if not isinstance(error, Exception):
                        raise
                _settle(batch)
                batch = []
        finally:
            # Cancelled (the loop is shutting down): nobody will settle these any more.
            for job in (*batch, *self._queue):
                if job.future is not None and not job.future.done():
                    job.future.cancel()
            if batch or self._queue:
                self._queue = []


def _settle(batch: list[Job]) -> None:
    for job in batch:
        future = job.future
        if future is None or future.done():  # the caller was cancelled; the work was still done
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)
