"""Authentication comes before everything else a request could learn from."""

from __future__ import annotations

import pytest
from api_helpers import Api


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/webhooks", "{}"),
        ("POST", "/webhooks", "not json"),
        ("POST", "/events", '{"type": "deal.created"}'),
        ("PUT", "/webhooks/wh_x", '{"events": []}'),
        ("GET", "/webhooks?limit=9999", None),
    ],
)
def test_a_bad_request_without_a_valid_key_is_401_not_a_validation_error(
    api: Api, method: str, path: str, body: str | None
) -> None:
    """Without a valid key nobody learns what the API expects: 401 before any validation."""
    for headers in ({}, {"X-API-Key": "aw_wrong"}):
        response = api.client.request(method, path, content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
