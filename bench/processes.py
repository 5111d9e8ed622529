"""Starting and stopping the processes a benchmark needs, so that none outlives it.

Every process is started in a session (process group) of its own, so that stopping it also stops
its children (a Celery worker's pool, uvicorn's) and a Ctrl-C in the terminal reaches only the
harness, which then stops them in order. ``Supervisor.close`` (or leaving its ``with`` block,
by an error or an interrupt) sends SIGTERM to each group it started, waits, then SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["ROOT", "LineProcess", "Supervisor", "interrupt_on_sigterm"]

ROOT = Path(__file__).resolve().parent.parent


class Supervisor:
    """The processes this run started; all stopped when it closes."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._started: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` in its own process group; stderr (and stdout unless given) go to a log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  # the child owns it from here
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self._started.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
        """SIGTERM the process's group, wait up to ``grace`` seconds, then SIGKILL it."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Children that outlived their parent (a pool's workers) are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ValueError):
            self._started.remove(process)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return process.returncode

    def close(self) -> None:
        while self._started:
            self.stop(self._started[-1], grace=5.0)


class LineProcess:
    """A child spoken to in JSON lines: one command in, one answer out (``bench.engine``)."""

    def __init__(
        self, supervisor: Supervisor, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ):
        self.name = name
        self._supervisor = supervisor
        self.process = supervisor.start(name, argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True, name=f"{name}-stdout").start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self.process.stdout:
                self._lines.put(line)
        self._lines.put(b"")

    def read(self, timeout: float) -> dict[str, Any]:
        """The next answer; raises if the child exits or stays silent for ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} did not answer within {timeout:.0f} s") from None
        if not line:
            log = self._supervisor.logs / f"{self.name}.log"
            raise RuntimeError(f"{self.name} exited ({self.process.poll()}); see {log}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def send(self, op: str, **arguments: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
        self.process.stdin.flush()

    def call(self, op: str, timeout: float = 120.0, **arguments: Any) -> dict[str, Any]:
        self.send(op, **arguments)
        return self.read(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.send("exit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        self._supervisor.stop(self.process)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so that ``finally`` blocks stop what was started."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def python(*module_and_args: str) -> list[str]:
    """argv running this interpreter."""
    return [sys.executable, *module_and_args]


def wait_for(predicate: Any, timeout: float, interval: float = 0.02, what: str = "a condition") -> None:
    """Poll ``predicate()`` until it is true; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
