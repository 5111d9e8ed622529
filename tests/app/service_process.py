"""Real ``attribution-webhooks`` processes for end-to-end tests: started on 127.0.0.1 with a free
port, their output read line by line, stopped with a signal."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["Process", "SpecReceiver", "cli", "leased_count", "running", "serve_command", "spec_receiver"]

TESTS = Path(__file__).resolve().parents[1]


class Process:
    """A child process whose stdout is collected by a thread, so a test can wait for a line."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first output line (from now on) that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.popen.poll() is not None and self.lines.empty()):
                raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.output)}")
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"did not stop within {timeout} s; output:\n{''.join(self.output)}"
            ) from None


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "attribution_webhooks.app.cli", *args]


def serve_command(database: Path, *extra: str) -> list[str]:
    """``serve`` in development mode on a free port, over a SQLite file."""
    return cli(
        "serve", "--mode", "development", "--port", "0", "--database-url", f"sqlite:///{database}", *extra
    )


@contextmanager
def running(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[Process]:
    process = Process(args, env)
    try:
        yield process
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


class SpecReceiver:
    """The spec's Python receiver (``tests/receivers/spec_receiver.py``) in its own process."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port

    def url(self, path: str = "/webhooks/attribution") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, object]:
        stats: dict[str, object] = httpx.get(self.url("/stats")).json()
        return stats

    def wait_verified(self, count: int, timeout: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if int(str(stats["verified"])) >= count:
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver verified {stats['verified']} of {count}: {stats}")
            time.sleep(0.05)


@contextmanager
def spec_receiver(secret: str) -> Iterator[SpecReceiver]:
    with running([sys.executable, str(TESTS / "receivers" / "spec_receiver.py"), secret]) as process:
        port = int(json.loads(process.wait_for(r"^\{").string)["port"])
        yield SpecReceiver(process, port)
        process.stop()


def leased_count(database: Path) -> int:
    """Deliveries that hold a lease in the SQLite file: none after a graceful stop."""
    import sqlite3

    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM deliveries WHERE lease IS NOT NULL").fetchone()[0])
