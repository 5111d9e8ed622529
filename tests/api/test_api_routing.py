"""How ``/events/batch`` is routed beside ``/events/{event_id}``: Litestar matches a static segment
before a path parameter, so ``batch`` reaches the batch handler, and any other last segment is an
event id, whose only method is GET. A 405 on a POST meant for the batch therefore comes from the
path (``/events/Batch``, a trailing space or newline) or the method, and its Allow header tells
which (seen once from a script; not reproduced with the exact path, ADR 0006 addendum)."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import DEAL, Api, assert_problem

from attribution_webhooks.app.services import MAX_BATCH


def _batch(count: int, prefix: str) -> dict[str, Any]:
    return {
        "events": [{"type": "deal.attributed", "data": DEAL, "id": f"evt_{prefix}{n}"} for n in range(count)]
    }


def _allowed(response: Any) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.mark.parametrize("path", ["/events/batch", "/events/batch/", "/events//batch"])
def test_a_full_batch_reaches_the_batch_handler(api: Api, path: str) -> None:
    """POST /events/batch with 1,000 events is accepted, a trailing or doubled slash included."""
    api.register()
    response = api.post(path, _batch(MAX_BATCH, "r"))
    assert response.status_code == 202, response.text
    assert len(response.json()["events"]) == MAX_BATCH


@pytest.mark.parametrize("path", ["/events/Batch", "/events/batch%20", "/events/batch%0A"])
def test_a_post_to_another_last_segment_is_the_event_route(api: Api, path: str) -> None:
    """A path that only looks like the batch one is an event id: 405, allowing GET, naming the path."""
    response = api.post(path, _batch(1, "x"))
    body = assert_problem(response, 405, "POST is not allowed on /events/")
    assert _allowed(response) == {"GET", "OPTIONS"}, body


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_another_method_on_the_batch_path_allows_post(api: Api, method: str) -> None:
    """Any method but POST (and OPTIONS) on /events/batch is a 405 whose Allow header names POST."""
    response = api.client.request(method, "/events/batch", headers=api.headers)
    assert response.status_code == 405
    assert _allowed(response) == {"OPTIONS", "POST"}
