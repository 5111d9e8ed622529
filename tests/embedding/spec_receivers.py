"""The guide's two receivers (``tests/receivers/spec_receiver.{py,js}``), each in a process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

__all__ = ["SpecReceiver", "spec_receiver"]


class SpecReceiver:
    """One of the spec's receivers (``tests/receivers/spec_receiver.{py,js}``), in a process."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/attribution"

    def stats(self) -> dict[str, object]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as answer:
            stats: dict[str, object] = json.loads(answer.read())
            return stats


@contextmanager
def spec_receiver(language: str, secret: str) -> Iterator[SpecReceiver]:
    """The spec's Python (``python``) or Node.js (``node``) receiver, verifying with ``secret``."""
    if language == "node":
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        command = [node, str(TESTS / "receivers" / "spec_receiver.js"), secret]
    else:
        command = [sys.executable, str(TESTS / "receivers" / "spec_receiver.py"), secret]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(json.loads(process.stdout.readline())["port"])
        yield SpecReceiver(process, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
