"""The long-running processes: ``serve`` (the API and a dispatcher in one process) and ``worker``
(a dispatcher alone, next to a ``serve`` on the same database).

SIGTERM or SIGINT stops a process gracefully: the API stops accepting connections and finishes
the requests it has; the dispatcher claims nothing more, gives attempts in flight
``shutdown_grace`` to finish, records every outcome and hands back every lease it did not use
(``Dispatcher.run``), so nothing is left leased. A second signal does not hurry it: the grace
period is the bound.

Work published in the same process wakes the dispatcher at once. Work published by another
process wakes it through PostgreSQL's LISTEN/NOTIFY within milliseconds; on SQLite, which has no
notifications, it is found by polling (``poll_interval``, 500 ms by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Generator
from datetime import UTC, datetime
from typing import Any, TextIO

import uvicorn
from sqlalchemy.engine import make_url

from .. import __version__
from ..adapters.sql.secret_keys import DEVELOPMENT_KEY_NOTE
from .api import create_app
from .bootstrap import Runtime
from .delivering import deliver
from .settings import Mode
from .worker import Dispatcher

__all__ = [
    "DEV_ACCOUNT",
    "announce_serving",
    "announce_working",
    "ensure_first_key",
    "listen",
    "note_development_key",
    "run",
    "serve",
    "settle_heap",
    "stop_on_signals",
    "work",
]

log = logging.getLogger(__name__)

#: The account ``serve`` creates, with a key, on the first start in development mode.
DEV_ACCOUNT = "acct_dev"


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: this process installs its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def settle_heap() -> None:
    """Move what start-up built (modules, the app, its routes, the runtime), which lives as long
    as the process, out of the cycle collector's sight: the full collections that many new
    objects set off then do not walk it every time (ADR 0007: about 15 % of a batch publish's
    CPU, 2 % of a worker's instructions per delivery)."""
    gc.collect()
    gc.freeze()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` on uvloop where it is installed, asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main())
    else:
        uvloop.run(main())


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call it on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound here rather than by uvicorn, which logs a failure to bind and
    exits from inside the event loop (a traceback); ours is an OSError of one line, such as
    ``cannot listen on 127.0.0.1:8080: address already in use``. Bound as uvicorn binds the
    socket it shares with its worker processes: IPv6 if the host has a colon, SO_REUSEADDR."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        reason = error.strerror or str(error)
        raise OSError(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from None
    return sock


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def note_development_key(runtime: Runtime, out: TextIO) -> None:
    """Say, on every start, that webhook secrets are sealed with a key kept in the database."""
    if runtime.store.development_key:
        _say(out, f"WARNING: {DEVELOPMENT_KEY_NOTE}")


def ensure_first_key(runtime: Runtime, out: TextIO) -> None:
    """On the first start in development mode (no key exists yet), create an account and a key
    and print the key: the only time it is shown."""
    if runtime.settings.mode is not Mode.DEVELOPMENT or runtime.keys.has_keys():
        return
    now = datetime.now(UTC)
    runtime.keys.create_account(DEV_ACCOUNT, "development", now)
    _, key = runtime.keys.create_key(DEV_ACCOUNT, "first development key", now)
    _say(out, f"First start: created account {DEV_ACCOUNT} and a development API key (shown only now):")
    _say(out, f"  X-API-Key: {key}")


def _database(runtime: Runtime) -> str:
    return make_url(runtime.settings.database_url).render_as_string(hide_password=True)


async def _dispatch(runtime: Runtime, stop: asyncio.Event) -> Dispatcher:
    transport = runtime.transport()
    dispatcher = runtime.dispatcher(transport)
    wakeups = runtime.wakeups()
    # Retention (ADR 0018) runs beside delivery, in short batches, and stops with it.
    retention = asyncio.ensure_future(runtime.retention().run(stop))
    try:
        await deliver(dispatcher, runtime.notices, wakeups, stop)
    finally:
        await transport.aclose()
        await asyncio.gather(retention, return_exceptions=True)
    return dispatcher


async def serve(
    runtime: Runtime,
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
    listening: socket.socket | None = None,
    banner: bool = True,
) -> None:
    """Serve the API and deliver, until SIGTERM/SIGINT (or ``stop``). ``listening`` is a socket
    bound already (``serve --workers N`` shares one among its processes); ``banner`` says
    whether to print the URL and the first key (the parent of several processes does that)."""
    settings = runtime.settings
    stop = stop or stop_on_signals()
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace.total_seconds())),
    )
    listening = listening or listen(settings.host, settings.port)
    server = _Server(config)
    web = asyncio.ensure_future(server.serve(sockets=[listening]))
    while not server.started and not web.done():
        await asyncio.sleep(0.01)
    if web.done():
        with contextlib.suppress(SystemExit, Exception):
            web.result()
        raise OSError("the API did not start (see the log above)")
    settle_heap()
    port = listening.getsockname()[1]
    url = f"http://{settings.host}:{port}"
    dispatch_stop = asyncio.Event()
    worker = asyncio.ensure_future(_dispatch(runtime, dispatch_stop))
    if banner:
        announce_serving(runtime, url, out)
        note_development_key(runtime, out)
        ensure_first_key(runtime, out)
    await _first_done(stop, web, worker)
    _say(out, "stopping: finishing requests and deliveries in flight")
    server.should_exit = True
    dispatch_stop.set()
    await asyncio.gather(web, worker, return_exceptions=True)
    _say(out, "stopped")
    for task in (web, worker):
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked just above


def announce_serving(runtime: Runtime, url: str, out: TextIO, processes: str = "") -> None:
    """The lines ``serve`` starts with: where, in which mode, over which database."""
    settings = runtime.settings
    _say(
        out,
        f"attribution-webhooks {__version__} serving {url} "
        f"({settings.mode} mode, database {_database(runtime)}{processes})",
    )
    _say(out, f"API docs: {url}/docs")
    _say(out, f"Dashboard: {url}/dashboard (sign in with an API key)")


def announce_working(runtime: Runtime, out: TextIO, processes: str = "") -> None:
    """The line ``worker`` starts with."""
    poll = runtime.settings.poll_interval.total_seconds()
    _say(
        out,
        f"attribution-webhooks {__version__} worker on {_database(runtime)}"
        f" (polling every {poll:g} s{processes})",
    )


async def work(
    runtime: Runtime, out: TextIO = sys.stdout, stop: asyncio.Event | None = None, banner: bool = True
) -> None:
    """Deliver (no API), until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or stop_on_signals()
    if banner:
        announce_working(runtime, out)
        note_development_key(runtime, out)
    settle_heap()
    dispatcher = await _dispatch(runtime, stop)
    stats = dispatcher.stats
    _say(out, f"stopped after {stats.attempts} attempts ({stats.succeeded} delivered)")


async def _first_done(stop: asyncio.Event, *tasks: asyncio.Future[Any]) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
