"""The embedding documentation runs as written: the README's example (15 lines at most, no web
framework), and every code block of docs/embedding.md, against live receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from receivers.scripted import ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOC = ROOT / "docs" / "embedding.md"
SECRET = b"a_long_shared_secret_42"
URL_IN_EXAMPLE = "http://127.0.0.1:3000/webhooks/attribution"


def _marked(path: Path, marker: str) -> str:
    [block] = re.findall(
        rf"<!-- {marker} -->\n```python\n(.*?)```\n<!-- /{marker} -->", path.read_text(encoding="utf-8"), re.S
    )
    return str(block)


def test_the_readme_example_is_the_docs_first_and_fits_in_fifteen_lines() -> None:
    """The README shows the page's leading example, whole, in 15 lines or fewer, with no Litestar."""
    example = _marked(README, "embedding-example")
    assert example == _marked(DOC, "embedding-example")
    assert DOC.read_text(encoding="utf-8").index("embedding-example") < DOC.read_text().index("```")
    assert len(example.splitlines()) <= 15
    assert "litestar" not in example.lower()


def test_the_readme_example_registers_delivers_publishes_and_reads_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run as written (its receiver URL pointed at a live local one): one signed delivery, and
    the log line it prints."""
    monkeypatch.chdir(tmp_path)  # the example's SQLite file goes here
    with ScriptedServer.running() as receiver:
        code = _marked(README, "embedding-example").replace(
            URL_IN_EXAMPLE, receiver.url("/webhooks/attribution")
        )
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
        [request] = receiver.requests("/webhooks/attribution")
    assert (
        request.headers["x-attribution-signature"]
        == hmac.new(SECRET, request.body, hashlib.sha256).hexdigest()
    )
    assert json.loads(request.body)["id"] == "evt_deal_1001"
    assert re.fullmatch(r"succeeded 200 \d+\.\d ms\n", capsys.readouterr().out)


def test_importing_the_package_stays_cheap_and_the_facade_needs_no_web_framework() -> None:
    """``import attribution_webhooks`` loads neither SQLAlchemy nor Litestar; ``Webhooks`` loads
    SQLAlchemy but still no Litestar."""
    probe = (
        "import sys, attribution_webhooks as aw\n"
        "print('sqlalchemy' in sys.modules, 'litestar' in sys.modules)\n"
        "aw.Webhooks\n"
        "print('sqlalchemy' in sys.modules, 'litestar' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True", "False"]


def test_the_outbox_example_delivers_what_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's transactional example: a committed deal is delivered; a deal whose
    transaction fails leaves neither a row nor a delivery."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "outbox_example"}
    exec(compile(_marked(DOC, "outbox-example"), str(DOC), "exec"), namespace)
    hooks = namespace["hooks"]
    close_deal = namespace["close_deal"]

    async def scenario(receiver: ScriptedServer) -> None:
        await hooks.register(receiver.url("/deals"), ["deal.attributed"], secret=SECRET.decode())  # type: ignore[attr-defined]
        async with hooks.running():  # type: ignore[attr-defined]
            await asyncio.to_thread(close_deal, "deal_1", 700, "partner_abc", "Acme Corp")  # type: ignore[arg-type]
            with pytest.raises(IntegrityError):  # the same deal again: its insert fails
                await asyncio.to_thread(close_deal, "deal_1", 999, "partner_xyz", "XYZ Inc")  # type: ignore[arg-type]
            [delivery] = await hooks.deliveries(event_id="evt_deal_1")  # type: ignore[attr-defined]
            for _ in range(200):
                if receiver.requests("/deals"):
                    break
                await asyncio.sleep(0.05)
            [view] = await hooks.deliveries(event_id="evt_deal_1")  # type: ignore[attr-defined]
            assert view.delivery.delivery_id == delivery.delivery.delivery_id

    try:
        with ScriptedServer.running() as receiver:
            asyncio.run(scenario(receiver))
            [request] = receiver.requests("/deals")
    finally:
        hooks.close()  # type: ignore[attr-defined]
    body = json.loads(request.body)
    assert body["data"]["amount"] == 700
    assert body["data"]["attribution"][0]["partnerId"] == "partner_abc"


def test_the_lower_level_example_publishes_and_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's wiring of the parts, executed as is, delivers one signed deal.attributed."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    [code] = [block for block in blocks if "Dispatcher.beside" in block]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "embedding_example"}
    with ScriptedServer.running() as receiver:
        exec(compile(code, str(DOC), "exec"), namespace)
        asyncio.run(namespace["main"](receiver.url("/webhooks/attribution")))  # type: ignore[operator]
        [request] = receiver.requests("/webhooks/attribution")
    assert (
        request.headers["x-attribution-signature"]
        == hmac.new(SECRET, request.body, hashlib.sha256).hexdigest()
    )
    assert b'"id":"evt_deal_1001"' in request.body
    assert "attempt 1 → 200" in capsys.readouterr().out
