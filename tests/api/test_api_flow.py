"""``rateLimit`` and ``circuitBreakerThreshold`` on ``/webhooks`` (ADR 0015)."""

from __future__ import annotations

import pytest
from api_helpers import Api, assert_problem


def test_policies_are_off_by_default(api: Api) -> None:
    """A webhook registered as the spec shows has no rate limit and no breaker."""
    hook = api.register()
    assert hook["rateLimit"] is None
    assert hook["rateLimitBurst"] == 0
    assert hook["circuitBreakerThreshold"] is None
    assert hook["circuitBreakerOpenedAt"] is None


def test_register_and_change_the_policies(api: Api) -> None:
    """The policies are set at registration, changed by PATCH, and 0 turns one off."""
    created = api.post(
        "/webhooks",
        {
            "url": "https://a.example/h",
            "events": ["partner.created"],
            "rateLimit": 10,
            "rateLimitBurst": 5,
            "circuitBreakerThreshold": 3,
        },
    ).json()
    assert (created["rateLimit"], created["rateLimitBurst"], created["circuitBreakerThreshold"]) == (10, 5, 3)
    changed = api.patch(f"/webhooks/{created['id']}", {"rateLimit": 2}).json()
    assert (changed["rateLimit"], changed["rateLimitBurst"], changed["circuitBreakerThreshold"]) == (2, 5, 3)
    off = api.patch(f"/webhooks/{created['id']}", {"rateLimit": 0, "circuitBreakerThreshold": 0}).json()
    assert (off["rateLimit"], off["circuitBreakerThreshold"]) == (None, None)
    assert api.get(f"/webhooks/{created['id']}").json()["rateLimit"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rateLimit", -1),
        ("rateLimit", 10_001),
        ("rateLimitBurst", -2),
        ("circuitBreakerThreshold", 1_001),
        ("circuitBreakerThreshold", -5),
    ],
)
def test_out_of_range_values_are_problems(api: Api, field: str, value: int) -> None:
    """A value out of range is a 422 problem naming the field, on create and on update."""
    body = {"url": "https://a.example/h", "events": ["partner.created"], field: value}
    assert_problem(api.post("/webhooks", body), 422, field)
    hook = api.register()
    assert_problem(api.patch(f"/webhooks/{hook['id']}", {field: value}), 422, field)


def test_a_wrong_type_is_a_problem(api: Api) -> None:
    """A rate limit that is not a whole number is rejected with problem+json."""
    response = api.post(
        "/webhooks", {"url": "https://a.example/h", "events": ["partner.created"], "rateLimit": "fast"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "rateLimit" in response.text
