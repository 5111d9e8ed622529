"""docs/embedding.md: its code runs as written, and the delivery reaches a live receiver, signed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receivers.scripted import ScriptedServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"


def test_the_embedding_example_publishes_and_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's python block, executed as is, delivers one signed deal.attributed to the receiver."""
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    monkeypatch.chdir(tmp_path)  # the example's SQLite file goes here
    namespace: dict[str, object] = {"__name__": "embedding_example"}
    with ScriptedServer.running() as receiver:
        exec(compile(code, str(DOC), "exec"), namespace)
        asyncio.run(namespace["main"](receiver.url("/webhooks/attribution")))  # type: ignore[operator]
        [request] = receiver.requests("/webhooks/attribution")
    expected = hmac.new(b"a_long_shared_secret_42", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-attribution-signature"] == expected
    assert b'"id":"evt_deal_1001"' in request.body
    assert "attempt 1 → 200" in capsys.readouterr().out
