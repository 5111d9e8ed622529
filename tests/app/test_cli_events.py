"""``events publish --file``: a JSON Lines file of events, checked whole, published in batches."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.services import MAX_BATCH
from attribution_webhooks.app.settings import Mode, Settings
from attribution_webhooks.core.samples import SAMPLE_DATA

DEAL = dict(SAMPLE_DATA["deal.attributed"])


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """A fresh SQLite database with one account and one webhook subscribed to deal.attributed."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_DATABASE_URL", url)
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "development")
    assert main(["api-keys", "create", "--account", "acct_a"]) == 0
    runtime = open_runtime(Settings(database_url=url, mode=Mode.DEVELOPMENT))
    try:
        asyncio.run(runtime.service.register_endpoint("acct_a", "http://127.0.0.1:9/h", ["deal.attributed"]))
    finally:
        runtime.close()
    capsys.readouterr()
    return url


def _write(path: Path, *events: object) -> str:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return str(path)


def _stored_events(url: str) -> int:
    runtime = open_runtime(Settings(database_url=url, mode=Mode.DEVELOPMENT))
    try:
        with runtime.store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM published_events").scalar_one())
    finally:
        runtime.close()


def _deal(index: int, **extra: object) -> dict[str, object]:
    return {"type": "deal.attributed", "data": {**DEAL, "dealId": f"deal_{index}"}, **extra}


def test_a_file_of_events_is_published_and_again_only_once(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each line is an event; publishing the file again repeats nothing that has an id."""
    path = _write(tmp_path / "e.jsonl", _deal(0, id="evt_f0"), "", _deal(1, id="evt_f1"))
    assert main(["events", "publish", "--file", path]) == 0
    assert capsys.readouterr().out == "published 2 event(s), 2 delivery(ies)\n"
    assert main(["events", "publish", "--file", path, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["id"], line["duplicate"], len(line["deliveryIds"])) for line in lines] == [
        ("evt_f0", True, 1),
        ("evt_f1", True, 1),
    ]
    assert _stored_events(db) == 2


def test_a_file_larger_than_a_batch_goes_in_several(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """More events than one transaction takes are all published, in batches of MAX_BATCH."""
    path = _write(tmp_path / "e.jsonl", *(_deal(i) for i in range(MAX_BATCH + 3)))
    assert main(["events", "publish", "--file", path]) == 0
    assert (
        capsys.readouterr().out == f"published {MAX_BATCH + 3:,} event(s), {MAX_BATCH + 3:,} delivery(ies)\n"
    )
    assert _stored_events(db) == MAX_BATCH + 3


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([_deal(0), "{"], "line 2: not valid JSON"),
        ([_deal(0), {"type": "deal.attributed", "data": {**DEAL, "amount": "x"}}], "line 2: data.amount"),
        ([{"type": "deal.nope", "data": {}}], "line 1: type: unknown event type 'deal.nope'"),
        ([_deal(0, id="bad")], "line 1: id:"),
        (["[1]"], "line 1: expected an object"),
        ([""], "the file holds no event"),
        ([_deal(0, id="evt_same"), {**_deal(1), "id": "evt_same"}], "appears twice with different data"),
    ],
    ids=["not-json", "bad-field", "bad-type", "bad-id", "not-an-object", "empty", "id-reused"],
)
def test_a_wrong_line_is_one_error_line_and_nothing_is_published(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[object], fragment: str
) -> None:
    """Any wrong line fails the whole file with a one-line error naming it, and stores nothing."""
    path = _write(tmp_path / "e.jsonl", *lines)
    assert main(["events", "publish", "--file", path]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert fragment in err
    assert _stored_events(db) == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["events", "publish", "--file", "/nonexistent/e.jsonl"], "cannot read /nonexistent/e.jsonl"),
        (["events", "publish", "--file", "x", "--type", "deal.attributed"], "either --file or --type"),
        (["events", "publish", "--type", "deal.attributed"], "give --type and --data"),
    ],
)
def test_bad_usage_is_one_error_line(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    """A missing file, or --file mixed with --type, is one line and a non-zero exit."""
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert fragment in err
