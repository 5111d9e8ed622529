"""Deep nesting: refused beyond ``MAX_DEPTH`` with a 422 naming where, never a 500, and whatever
is accepted reads back through every route (and the CLI's ``events publish``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Api, accounts, assert_problem
from litestar.testing import TestClient

from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.settings import Mode, Settings
from attribution_webhooks.core.wire import MAX_DEPTH

#: body (1) > data (2) > changes (3) > the field (4) > old: its arrays start at level 5.
DEEPEST_OLD = MAX_DEPTH - 4


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def partner_updated(levels: int) -> dict[str, Any]:
    return {
        "id": "p",
        "name": "P",
        "status": "active",
        "changes": {"tier": {"old": nested(levels), "new": 1}},
    }


def raw_body(data_text: str) -> bytes:
    return b'{"type": "partner.updated", "data": ' + data_text.encode() + b"}"


@pytest.mark.parametrize("levels", [DEEPEST_OLD + 1, 325, 326, 1000, 30_000])
def test_too_deep_arrays_in_an_event_are_a_422_naming_the_path(api: Api, levels: int) -> None:
    """POST /events nesting past MAX_DEPTH: 422 naming data.changes.tier.old[0]…, nothing stored."""
    before = api.log_size()
    text = '{"id": "p", "name": "P", "status": "a", "changes": {"tier": {"old": ' + "[" * levels
    text += "]" * levels + ', "new": 1}}}'
    response = api.client.post(
        "/events", content=raw_body(text), headers={**api.headers, "content-type": "application/json"}
    )
    body = assert_problem(response, 422, "data.changes.tier.old[0]", f"deeper than {MAX_DEPTH}")
    assert body["errors"][0]["field"].startswith("data.changes.tier.old[0][0]")
    assert api.log_size() == before


@pytest.mark.parametrize("path", ["/events", "/webhooks"])
def test_too_deep_objects_are_a_422_on_every_body(api: Api, path: str) -> None:
    """~1,000 nested objects in any body: 422 naming the path, never a RecursionError's 500."""
    text = '{"a": ' * 1000 + "1" + "}" * 1000
    response = api.client.post(
        path, content=text, headers={**api.headers, "content-type": "application/json"}
    )
    assert_problem(response, 422, "a.a.a", f"deeper than {MAX_DEPTH}")


def test_too_deep_strings_of_brackets_are_not_nesting(api: Api) -> None:
    """Brackets inside strings do not count: a string of 10,000 '[' is an ordinary value."""
    api.register(events=["partner.updated"])
    data = {"id": "p", "name": "[" * 10_000, "status": "{" * 10_000, "changes": {}}
    response = api.post("/events", {"type": "partner.updated", "data": data})
    assert response.status_code == 202, response.text


def test_the_deepest_accepted_event_reads_back_through_every_route(api: Api) -> None:
    """At exactly MAX_DEPTH the event is accepted and GET /events/{id}, the delivery and the log show it."""
    hook = api.register(events=["partner.updated"])
    data = partner_updated(DEEPEST_OLD)
    published = api.post("/events", {"type": "partner.updated", "data": data})
    assert published.status_code == 202, published.text
    event = api.get(f"/events/{published.json()['id']}")
    assert event.status_code == 200, event.text
    assert event.json()["data"] == data
    (delivery_id,) = published.json()["deliveryIds"]
    assert api.get(f"/deliveries/{delivery_id}").status_code == 200
    log = api.get(f"/webhooks/{hook['id']}/deliveries")
    assert [d["id"] for d in log.json()["data"]] == [delivery_id]
    deeper = api.post("/events", {"type": "partner.updated", "data": partner_updated(DEEPEST_OLD + 1)})
    assert_problem(deeper, 422, "data.changes.tier.old")


def test_the_cli_publishes_the_deepest_document_and_refuses_a_deeper_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """events publish: MAX_DEPTH is accepted and reads back through the API; one level more is one line, exit 2."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_DATABASE_URL", url)
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "development")
    runtime = open_runtime(Settings(database_url=url, mode=Mode.DEVELOPMENT))
    try:
        with TestClient(create_app(runtime)) as client:
            alice, _ = accounts(runtime, client)
            alice.register(events=["partner.updated"])
            argv = ["events", "publish", "--account", alice.account, "--type", "partner.updated"]
            deepest = json.dumps(partner_updated(DEEPEST_OLD))
            assert main([*argv, "--data", deepest, "--id", "evt_deep"]) == 0
            assert "published evt_deep to 1 webhook(s)" in capsys.readouterr().out
            event = alice.get("/events/evt_deep")
            assert event.status_code == 200, event.text
            assert event.json()["data"] == partner_updated(DEEPEST_OLD)
            deeper = json.dumps(partner_updated(DEEPEST_OLD + 1))
            assert main([*argv, "--data", deeper, "--id", "evt_deeper"]) != 0
            error = capsys.readouterr().err
            assert error.count("\n") == 1
            assert "data.changes.tier.old[0]" in error
            assert alice.get("/events/evt_deeper").status_code == 404
    finally:
        runtime.close()


def test_the_use_case_refuses_too_deep_data_from_any_caller(api: Api) -> None:
    """WebhookService.publish (the embedding API's path) refuses data past MAX_DEPTH before storing."""
    import asyncio

    from attribution_webhooks.app.services import NewEvent
    from attribution_webhooks.core.errors import ValidationError

    before = api.log_size()
    new = NewEvent("partner.updated", partner_updated(DEEPEST_OLD + 1))
    with pytest.raises(ValidationError) as raised:
        asyncio.run(api.runtime.service.publish(api.account, new))
    assert raised.value.field.startswith("$.data.changes.tier.old[0]")
    assert api.log_size() == before
    new = NewEvent("partner.updated", partner_updated(100_000))  # deeper than Python's recursion limit
    with pytest.raises(ValidationError):
        asyncio.run(api.runtime.service.publish(api.account, new))
