"""Running one dispatcher in a process: alone on SQLite, with PostgreSQL's wake-ups beside it.

Shared by the service's processes (``runner``) and the embedding facade (``embedding``)."""

from __future__ import annotations

import asyncio

from ..adapters.sql.wakeups import PostgresWakeups
from .services import NoticeBoard
from .worker import Dispatcher

__all__ = ["deliver"]


async def deliver(
    dispatcher: Dispatcher, notices: NoticeBoard, wakeups: PostgresWakeups | None, stop: asyncio.Event
) -> None:
    """Run ``dispatcher`` until ``stop`` is set (``Dispatcher.run``). With ``wakeups``, the
    process's notices also go to the other processes, and theirs reach this dispatcher."""
    if wakeups is None:
        await dispatcher.run(stop)
        return
    async with wakeups:
        notices.subscribe(wakeups)
        listening = asyncio.ensure_future(wakeups.listen(dispatcher, stop))
        try:
            await dispatcher.run(stop)
        finally:
            notices.unsubscribe(wakeups)
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
