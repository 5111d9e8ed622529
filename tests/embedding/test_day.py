"""The example's realistic-day script: it drives partners, batches of tracked events and deals
through the API's use cases, and (with ``--deliver``) delivers every event it published."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

from attribution_api.day import main
from attribution_webhooks.adapters.payloads import check_event_data
from attribution_webhooks.adapters.sql import create_engine
from attribution_webhooks.adapters.sql.schema import published_events
from receivers.scripted import ScriptedServer


def test_a_small_day_publishes_valid_events_and_delivers_them_all(
    database_url: str | URL, capsys: pytest.CaptureFixture[str]
) -> None:
    """600 touchpoints in batches of 100, 30 deals, 8 partners: the summary counts what was
    published, every payload is the guide's, every deal's credits sum to its amount, and the
    receiver got each event once."""
    url = make_url(database_url).render_as_string(hide_password=False)
    with ScriptedServer.running() as receiver:
        argv = [
            "--database-url",
            url,
            "--partners",
            "8",
            "--users",
            "50",
            "--tracked",
            "600",
            "--deals",
            "30",
        ]
        argv += ["--batch", "100", "--seed", "7", "--deliver", "--wait", "60"]
        argv += ["--webhook-url", receiver.url("/day"), "--secret", "a_day_of_attribution_secret"]
        assert main(argv) == 0
        received = [json.loads(r.body)["id"] for r in receiver.requests("/day")]
    summary = json.loads(capsys.readouterr().out)
    assert summary["pending"] == 0
    assert (summary["partners"], summary["tracked"], summary["deals"]) == (8, 600, 30)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            bodies = [json.loads(body) for body in conn.execute(select(published_events.c.body)).scalars()]
    finally:
        engine.dispose()
    assert len(bodies) == summary["events"]
    kinds = Counter(body["type"] for body in bodies)
    assert kinds["event.tracked"] == 600
    assert kinds["partner.created"] == 8
    assert kinds["partner.updated"] == summary["partnerUpdates"]
    assert kinds["deal.attributed"] == 30  # every deal's user was touched before it closed
    for body in bodies:
        check_event_data(body["type"], body["data"])
        if body["type"] == "deal.attributed":
            assert sum(share["credit"] for share in body["data"]["attribution"]) == body["data"]["amount"]
    assert sorted(received) == sorted(body["id"] for body in bodies)


def test_a_bad_secret_is_one_line_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret the webhooks refuse stops the script before the day starts, saying why."""
    status = main(
        [
            "--database-url",
            f"sqlite:///{tmp_path}/day.sqlite3",
            "--webhook-url",
            "http://127.0.0.1:9/x",
            "--secret",
            "short",
        ]
    )
    assert status == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "secret" in line
