"""``serve --workers N`` and ``worker --workers N``: N processes under one parent (issue 12).

The parent does what must happen once, before any child starts: it opens the database (SQLite
migrates itself, so two children never race to), makes the dashboard's session key file, creates
and prints the first development key, binds and listens on the API's socket, and prints the
banner. It then starts the children with multiprocessing's ``spawn`` (fresh interpreters: no
thread, lock or database connection is inherited). Each child opens its own runtime, so its own
connections, and runs ``serve`` or ``work`` exactly as a single process does; ``serve``'s children
accept on the one shared socket, and the kernel spreads the connections among them.

SIGTERM or SIGINT to the parent is passed on to every child as SIGTERM: each stops gracefully
(``runner``: requests and deliveries in flight finish, every unused lease is handed back). The
parent waits ``shutdown_grace`` and a margin, kills what is still running, and exits 0.

A child that exits on its own (a crash, a lost database, a kill) is reported in one line; the
parent then stops the others in the same way and exits 1. It does not restart it: a child dies
only on a fault that a restart in place would turn into a silent crash loop, and whatever started
the parent (systemd, Kubernetes, a shell) sees the exit status and restarts the whole. Nothing is
lost: the dead child's leases expire and its deliveries become due again (at least once).
A child whose parent dies (SIGKILL) notices within a second and stops gracefully on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .settings import Settings

if TYPE_CHECKING:
    from .bootstrap import Runtime

__all__ = ["Kind", "prepare", "process_count", "supervise"]

Kind = Literal["serve", "worker"]

PROG = "attribution-webhooks"
#: Beyond ``shutdown_grace``, how long a stopping child may take (closing connections, exiting).
_STOP_MARGIN = 10.0


def process_count(settings: Settings) -> int:
    """``--workers``, or the default: every core on PostgreSQL, one process on SQLite.

    More processes on SQLite are allowed and deliver correctly (claims hold the file's one write
    lock), and a backlog drains faster with two (ADR 0004's addendum); the default stays one
    there because SQLite is the embedded, one-machine setup: a second process contends for the
    one writer, and in ``serve`` finds events published by the other only by polling."""
    if settings.workers is not None:
        return settings.workers
    try:
        sqlite = make_url(settings.database_url).get_backend_name() == "sqlite"
    except ArgumentError:
        return 1  # opening the database reports the bad URL
    return 1 if sqlite else os.cpu_count() or 1


def prepare(runtime: Runtime, kind: Kind, count: int, out: TextIO = sys.stdout) -> socket.socket | None:
    """What the parent does once before its children start; returns the API's socket (bound and
    listening, so that connections wait in its backlog until a child accepts them)."""
    from .runner import announce_serving, announce_working, ensure_first_key, listen, note_development_key

    settings = runtime.settings
    processes = f", {count} processes"
    if kind == "worker":
        announce_working(runtime, out, processes)
        note_development_key(runtime, out)
        return None
    from .dashboard.session import session_key

    session_key(settings)  # writes the key file once, before the children read it
    listening = listen(settings.host, settings.port)
    listening.listen(2048)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    announce_serving(runtime, f"http://{host}:{listening.getsockname()[1]}", out, processes)
    note_development_key(runtime, out)
    ensure_first_key(runtime, out)
    return listening


def supervise(
    settings: Settings, kind: Kind, count: int, listening: socket.socket | None, out: TextIO = sys.stdout
) -> int:
    """Run ``count`` children of ``kind`` until a signal (exit 0) or until one exits (exit 1)."""
    context = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: list[BaseProcess] = []
    failed = False
    try:
        for index in range(1, count + 1):
            child = context.Process(
                target=_child,
                args=(kind, settings, listening, index, os.getpid()),
                name=f"{kind}-{index}",
            )
            child.start()
            children.append(child)
        if listening is not None:
            listening.close()  # the children hold it now
        _say(out, f"started {count} {kind} processes: pids {', '.join(str(c.pid) for c in children)}")
        while not stopping:
            ended = multiprocessing.connection.wait([c.sentinel for c in children], timeout=0.2)
            if ended:
                dead = next(c for c in children if c.sentinel in ended)
                # Its sentinel closes as it exits, a moment before it can be reaped: wait for that.
                dead.join(5)
                _error(f"{dead.name} (pid {dead.pid}) {_how(dead.exitcode)}; stopping the others")
                failed = True
                break
    finally:
        failed = _stop(children, settings.shutdown_grace.total_seconds() + _STOP_MARGIN) or failed
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _say(out, "stopped")
    return 1 if failed else 0


def _stop(children: list[BaseProcess], timeout: float) -> bool:
    """SIGTERM every child still running, wait, kill the rest; True if one did not exit 0."""
    for child in children:
        if child.exitcode is None and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    failed = False
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.exitcode is None:
            _error(f"{child.name} (pid {child.pid}) did not stop within {timeout:g} s; killed")
            child.kill()
            child.join()
        failed = failed or child.exitcode != 0
    return failed


def _how(status: int | None) -> str:
    if status is not None and status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


class _Prefixed(io.TextIOBase):
    """A child's standard output: each line says which process wrote it."""

    def __init__(self, prefix: str, out: TextIO) -> None:
        self._prefix = prefix
        self._out = out

    def write(self, text: str) -> int:
        lines = text.splitlines(keepends=True)
        self._out.write("".join(self._prefix + line for line in lines))
        return len(text)

    def flush(self) -> None:
        self._out.flush()


def _child(kind: Kind, settings: Settings, listening: socket.socket | None, index: int, parent: int) -> None:
    """One child: its own runtime, then ``serve`` or ``work`` until SIGTERM (or its parent dies)."""
    # Ctrl-C in a terminal reaches the whole process group; until the event loop handles it,
    # the parent's SIGTERM is what stops a child that is still starting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    out = cast(TextIO, _Prefixed(f"[{kind} {index} pid {os.getpid()}] ", sys.stdout))
    try:
        from .bootstrap import open_runtime
        from .observability import configure_logging
        from .runner import run, serve, work

        configure_logging(settings.log_level, settings.log_format)
        runtime = open_runtime(settings, serving=True)
    except Exception as error:  # one line, as the CLI reports a failure to open
        _error(f"{kind} {index}: {_first_line(error)}")
        raise SystemExit(1) from None
    _say(out, "started")
    try:

        async def main() -> None:
            from .runner import stop_on_signals

            stop = stop_on_signals()
            orphaned = asyncio.ensure_future(_watch_parent(parent, stop.set))
            try:
                if kind == "serve":
                    await serve(runtime, out, stop, listening=listening, banner=False)
                else:
                    await work(runtime, out, stop, banner=False)
            finally:
                orphaned.cancel()

        run(main)
    except Exception as error:
        _error(f"{kind} {index}: {_first_line(error)}")
        raise SystemExit(1) from None
    finally:
        runtime.close()


def _die_with(parent: int) -> None:
    """On Linux, ask the kernel to kill this child the moment its parent dies (PR_SET_PDEATHSIG):
    a parent killed with SIGKILL leaves no orphan still holding the API's port or its leases, so
    the service restarts at once. Elsewhere ``_watch_parent`` notices within a second."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


async def _watch_parent(parent: int, stop: Callable[[], None]) -> None:
    """Stop when the parent is gone (the child is re-parented)."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
