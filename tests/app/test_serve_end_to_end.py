"""End to end against a real ``serve`` process on 127.0.0.1 with a live receiver: the spec's curl
examples as written (apart from the host and the placeholders), a signed delivery that the
spec's receiver verifies, and the delivery log showing the attempt."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_process import Process, cli, leased_count, running, serve_command, spec_receiver

ROOT = Path(__file__).resolve().parents[2]
# The public contract, versioned with the code; the upstream copy, where it is checked out next
# to the repository, must not have drifted from it.
SPEC = ROOT / "docs" / "spec" / "webhooks.md"
UPSTREAM_SPEC = ROOT.parent / "shared" / "spec" / "webhooks.md"
SECRET = "your_webhook_secret"


def spec_curls() -> list[str]:
    """Every ```bash block of the spec that runs curl, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", SPEC.read_text(encoding="utf-8"), flags=re.S)
    return [block for block in blocks if block.lstrip().startswith("curl")]


def test_the_versioned_spec_is_the_published_one() -> None:
    """docs/spec/webhooks.md is a copy of the public documentation, not a variant of it."""
    if not UPSTREAM_SPEC.is_file():
        pytest.skip(f"no upstream spec checked out at {UPSTREAM_SPEC}")
    assert SPEC.read_text(encoding="utf-8") == UPSTREAM_SPEC.read_text(encoding="utf-8")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Process, str, str, Path]]:
    """A development-mode ``serve`` on a new SQLite file: the process, its URL, the first key, the file."""
    database = tmp_path / "e2e.sqlite3"
    args = serve_command(database, "--retry-delays", "1s,1s", "--shutdown-grace", "2s")
    with running(args) as process:
        url = process.wait_for(r"serving (http://\S+)").group(1)
        key = process.wait_for(r"X-API-Key: (\S+)").group(1)
        yield process, url, key, database
        assert process.stop() == 0
    assert leased_count(database) == 0


def run_curl(block: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        block = block.replace(old, new)
    result = subprocess.run(["bash", "-c", block], capture_output=True, text=True, timeout=30, check=True)
    return result.stdout


def test_every_curl_example_of_the_spec_works_against_a_running_server(
    served: tuple[Process, str, str, Path],
) -> None:
    """Register, list, update and delete exactly as the spec writes them; the manual test reaches a
    receiver doing what the spec's Python example does, which refuses its placeholder signature."""
    _, url, key, _ = served
    blocks = spec_curls()
    assert len(blocks) == 5
    register, manual, listing, update, remove = blocks
    with spec_receiver(SECRET) as receiver:
        base = {"https://api.attribution.example": url, "YOUR_API_KEY": key}

        created = httpx.Response(200, content=run_curl(register, base)).json()
        assert created["id"].startswith("wh_")
        assert created["events"] == ["deal.attributed", "partner.created"]
        assert created["secret"] == SECRET

        listed = httpx.Response(200, content=run_curl(listing, base)).json()
        assert [hook["id"] for hook in listed["data"]] == [created["id"]]

        with_id = {**base, "wh_123": created["id"]}
        updated = httpx.Response(200, content=run_curl(update, with_id)).json()
        assert updated["events"] == ["deal.attributed"]
        assert updated["url"] == created["url"]

        assert run_curl(remove, with_id) == ""
        gone = httpx.get(f"{url}/webhooks/{created['id']}", headers={"X-API-Key": key})
        assert gone.status_code == 404

        answer = run_curl(manual, {"https://yourdomain.com/webhooks/attribution": receiver.url()})
        assert answer == "Invalid signature"
        assert receiver.stats()["rejected"] == 1


def _publish(url: str, key: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{url}/events", json=body, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    return response.json()


def test_a_published_event_arrives_signed_and_the_log_shows_the_attempt(
    served: tuple[Process, str, str, Path],
) -> None:
    """publish → a signed POST reaches the spec's receiver, verifies, and the delivery log shows
    one successful attempt with its status and latency; a test event arrives the same way."""
    _, url, key, _ = served
    headers = {"X-API-Key": key}
    with spec_receiver(SECRET) as receiver:
        hook = httpx.post(
            f"{url}/webhooks",
            json={"url": receiver.url(), "events": ["deal.attributed", "partner.created"], "secret": SECRET},
            headers=headers,
        ).json()
        data = {"id": "partner_abc", "name": "Åcme Corp ✓", "type": "referral", "status": "active"}
        published = _publish(url, key, {"type": "partner.created", "data": data, "id": "evt_e2e_1"})
        stats = receiver.wait_verified(1)
        assert stats["event_ids"] == ["evt_e2e_1"]
        assert stats["rejected"] == 0

        delivery = httpx.get(f"{url}/deliveries/{published['deliveryIds'][0]}", headers=headers).json()
        assert delivery["status"] == "succeeded"
        [attempt] = delivery["attempts"]
        assert attempt["statusCode"] == 200
        assert attempt["succeeded"] is True
        assert attempt["latencyMs"] > 0
        assert attempt["responseBody"] == "OK"

        sent = httpx.post(
            f"{url}/webhooks/{hook['id']}/test", json={"type": "deal.attributed"}, headers=headers
        )
        assert sent.status_code == 202
        receiver.wait_verified(2)
        log = httpx.get(
            f"{url}/webhooks/{hook['id']}/deliveries", params={"status": "succeeded"}, headers=headers
        )
        assert len(log.json()["data"]) == 2


def test_a_failing_receiver_is_retried_on_the_configured_schedule(
    served: tuple[Process, str, str, Path], tmp_path: Path
) -> None:
    """A receiver that is down is retried after the configured 1 s; when it is up, the retry lands."""
    _, url, key, _ = served
    headers = {"X-API-Key": key}
    with spec_receiver("a_different_secret_123") as wrong:  # answers 401: a failed attempt
        hook = httpx.post(
            f"{url}/webhooks",
            json={"url": wrong.url(), "events": ["deal.attributed"], "secret": SECRET},
            headers=headers,
        ).json()
        published = _publish(url, key, {"type": "deal.attributed", "data": _deal()})
        delivery_url = f"{url}/deliveries/{published['deliveryIds'][0]}"
        _wait(lambda: httpx.get(delivery_url, headers=headers).json()["status"] == "failed", 10)
    delivery = httpx.get(delivery_url, headers=headers).json()
    assert [a["statusCode"] for a in delivery["attempts"]] == [401, 401, 401]
    gaps = [
        _seconds(b["startedAt"]) - _seconds(a["startedAt"])
        for a, b in zip(delivery["attempts"], delivery["attempts"][1:], strict=False)
    ]
    assert all(0.9 <= gap < 3 for gap in gaps), gaps
    assert hook["id"] == delivery["webhookId"]


def _deal() -> dict[str, Any]:
    return {
        "dealId": "deal_xyz",
        "amount": 10000,
        "closedAt": "2024-01-20T15:00:00Z",
        "model": "linear",
        "attribution": [],
    }


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _wait(condition: Any, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_serve_prints_the_key_only_on_the_first_start(tmp_path: Path) -> None:
    """The development key is printed once; a restart on the same database does not make another."""
    database = f"sqlite:///{tmp_path / 'restart.sqlite3'}"
    args = cli("serve", "--mode", "development", "--port", "0", "--database-url", database)
    for start in range(2):
        with running(args) as process:
            process.wait_for(r"API docs")
            assert process.stop() == 0
            printed = "".join(process.output)
            assert ("X-API-Key:" in printed) is (start == 0), printed
