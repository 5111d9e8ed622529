"""Webhook URLs never carry credentials: a user name or password in the URL is refused everywhere."""

from __future__ import annotations

import pytest
from api_helpers import Api, assert_problem

from attribution_webhooks.core.endpoint import validate_url
from attribution_webhooks.core.errors import ValidationError

SPELLINGS = [
    "https://user:pass@receiver.example/hooks",
    "https://user@receiver.example/hooks",
    "https://:pass@receiver.example/hooks",
    "https://@receiver.example/hooks",
    "https://user:p%40ss@receiver.example:8443/hooks",
    "HTTPS://USER:PASS@RECEIVER.EXAMPLE/hooks",
]


@pytest.mark.parametrize("url", SPELLINGS)
def test_registration_refuses_credentials_in_the_url(api: Api, url: str) -> None:
    """POST /webhooks with userinfo is a 422 naming ``url``, and nothing is stored."""
    response = api.post("/webhooks", {"url": url, "events": ["deal.attributed"]})
    body = assert_problem(response, 422, "url", "password")
    assert [error["field"] for error in body["errors"]] == ["url"]
    assert url not in response.text  # the answer does not echo the credentials back
    assert api.log_size() == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_an_update_cannot_add_credentials(api: Api, method: str) -> None:
    """Changing the URL goes through the same rule, and the stored URL is unchanged."""
    hook = api.register()
    response = api.client.request(
        method,
        f"/webhooks/{hook['id']}",
        json={"url": "https://user:pass@receiver.example/hooks"},
        headers=api.headers,
    )
    assert_problem(response, 422, "url", "password")
    assert api.get(f"/webhooks/{hook['id']}").json()["url"] == hook["url"]


def test_an_at_sign_outside_the_authority_is_allowed(api: Api) -> None:
    """``@`` in the path or query is not a credential: such URLs register as before."""
    for url in ("https://receiver.example/hooks/@team", "https://receiver.example/hooks?owner=a@b.example"):
        assert api.post("/webhooks", {"url": url, "events": ["deal.attributed"]}).status_code == 201


@pytest.mark.parametrize("require_https", [True, False])
def test_the_core_rule_applies_in_every_mode(require_https: bool) -> None:
    """The rule lives in ``validate_url``, so the CLI and the embedding API get it too."""
    with pytest.raises(ValidationError) as raised:
        validate_url("https://user:pass@receiver.example/hooks", require_https)
    assert raised.value.field == "url"
