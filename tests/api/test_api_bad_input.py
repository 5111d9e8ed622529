"""Bad input: every case is a 4xx problem+json whose detail names the problem, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import DEAL, Api, assert_problem

HOOK = {"url": "https://receiver.example/hooks", "events": ["deal.attributed"]}

# (method, path, body (bytes are sent raw), status, fragments of the detail)
CASES: list[tuple[str, str, Any, int, tuple[str, ...]]] = [
    ("POST", "/webhooks", b'{"url": "https://x.example",', 400, ("not valid JSON",)),
    ("POST", "/webhooks", b"", 400, ("empty",)),
    ("POST", "/webhooks", [1, 2], 422, ("expected an object, got an array",)),
    ("POST", "/webhooks", {"events": ["deal.attributed"]}, 422, ("url: required",)),
    ("POST", "/webhooks", {**HOOK, "url": 42}, 422, ("url: expected a string, got a number",)),
    ("POST", "/webhooks", {**HOOK, "events": "deal.attributed"}, 422, ("events: expected an array",)),
    ("POST", "/webhooks", {**HOOK, "events": []}, 422, ("events: subscribe to at least one",)),
    (
        "POST",
        "/webhooks",
        {**HOOK, "events": ["deal.atributed"]},
        422,
        ("events[0]", "deal.atributed", "known types"),
    ),
    ("POST", "/webhooks", {**HOOK, "url": "not a url"}, 422, ("url:",)),
    ("POST", "/webhooks", {**HOOK, "url": "ftp://files.example/x"}, 422, ("url:", "scheme 'ftp'")),
    ("POST", "/webhooks", {**HOOK, "url": "https://x.example/#frag"}, 422, ("url:", "fragment")),
    ("POST", "/webhooks", {**HOOK, "secret": "short"}, 422, ("secret:", "16")),
    ("POST", "/webhooks", {**HOOK, "evnts": ["deal.attributed"]}, 422, ("evnts: unknown field",)),
    (
        "POST",
        "/webhooks",
        {**HOOK, "standardWebhooks": "yes"},
        422,
        ("standardWebhooks: expected true or false",),
    ),
    ("POST", "/webhooks", {**HOOK, "ordered": "yes"}, 422, ("ordered: expected true or false",)),
    ("POST", "/webhooks", {**HOOK, "ordered": 1}, 422, ("ordered: expected true or false",)),
    ("POST", "/events", {"type": "deal.attributed"}, 422, ("data: required",)),
    (
        "POST",
        "/events",
        {"type": "deal.nope", "data": DEAL},
        422,
        ("type:", "unknown event type 'deal.nope'"),
    ),
    (
        "POST",
        "/events",
        {"type": "deal.attributed", "data": {**DEAL, "amount": "10000"}},
        422,
        ("data.amount: expected a number, got a string",),
    ),
    (
        "POST",
        "/events",
        {"type": "deal.attributed", "data": {**DEAL, "closedAt": "yesterday"}},
        422,
        ("data.closedAt:",),
    ),
    (
        "POST",
        "/events",
        {"type": "deal.attributed", "data": {**DEAL, "attribution": [{"partnerId": "p"}]}},
        422,
        ("data.attribution[0].partnerName: required",),
    ),
    ("POST", "/events", {"type": "partner.created", "data": DEAL}, 422, ("data.id: required",)),
    ("POST", "/events", {"type": "deal.attributed", "data": {**DEAL, "amount": 2**60}}, 422, ("2^53",)),
    ("POST", "/events", {"type": "deal.attributed", "data": DEAL, "id": "123"}, 422, ("id:", "evt_")),
    (
        "POST",
        "/events",
        {"type": "deal.attributed", "data": DEAL, "timestamp": "2024-01-20T15:00:00"},
        422,
        ("timestamp:", "time zone"),
    ),
    (
        "POST",
        "/events",
        {"type": "deal.attributed", "data": DEAL, "timestamp": 1705762800},
        422,
        ("timestamp:",),
    ),
    ("GET", "/webhooks?limit=0", None, 422, ("limit:",)),
    ("GET", "/webhooks?limit=abc", None, 422, ("limit:",)),
    ("GET", "/webhooks/wh_unknown", None, 404, ("wh_unknown",)),
    ("GET", "/deliveries/dlv_unknown", None, 404, ("dlv_unknown",)),
    ("GET", "/events/evt_unknown", None, 404, ("evt_unknown",)),
    ("PUT", "/webhooks/wh_unknown", {"events": ["deal.attributed"]}, 404, ("wh_unknown",)),
    ("GET", "/no/such/path", None, 404, ("no such path",)),
    ("PATCH", "/events", None, 405, ("PATCH",)),
]


def _send(api: Api, method: str, path: str, body: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": {**api.headers, "Content-Type": "application/json"}}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    return api.client.request(method, path, **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragments"),
    CASES,
    ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(CASES)],
)
def test_bad_input_is_a_problem_and_stores_nothing(
    api: Api, method: str, path: str, body: Any, status: int, fragments: tuple[str, ...]
) -> None:
    """Each bad request gets its status, a problem+json naming the problem, and no stored change."""
    api.register(url="https://subscriber.example/h", events=["deal.attributed", "partner.created"])
    size = api.log_size()
    assert_problem(_send(api, method, path, body), status, *fragments)
    assert api.log_size() == size


def test_field_errors_are_all_listed(api: Api) -> None:
    """A body with several wrong fields lists each one in errors, with its JSON path."""
    response = api.post("/events", {"type": "deal.attributed", "data": {"dealId": 1, "amount": True}})
    fields = {error["field"] for error in assert_problem(response, 422)["errors"]}
    assert {"data.dealId", "data.amount", "data.closedAt", "data.model", "data.attribution"} <= fields


def test_a_body_over_the_limit_is_413(api: Api) -> None:
    """A body larger than max_body_size (64 KiB in these tests) is refused with 413."""
    big = {"type": "deal.attributed", "data": {**DEAL, "model": "x" * 70_000}}
    size = api.log_size()
    assert_problem(api.post("/events", big), 413, "limit of 65536 bytes")
    assert api.log_size() == size


def test_an_update_with_nothing_to_change_is_422(api: Api) -> None:
    """PUT with an empty object says what it needs."""
    hook = api.register()
    assert_problem(api.put(f"/webhooks/{hook['id']}", {}), 422, "nothing to update")
