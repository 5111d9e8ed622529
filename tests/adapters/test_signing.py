"""Signatures receivers can check: the spec's scheme, and Standard Webhooks' own library."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.events import EndpointRegistered, SecretRotated
from attribution_webhooks.core.signing import delivery_headers

BODY = b'{"id":"evt_123","type":"deal.attributed","timestamp":"2024-01-20T15:00:00Z","data":{"dealId":"d"}}'
GENERATED = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()


def headers_for(endpoint: ep.Endpoint, now: datetime) -> dict[str, str]:
    return dict(
        delivery_headers(
            HmacSigner(),
            endpoint,
            body=BODY,
            event_id="evt_123",
            event_type="deal.attributed",
            delivery_id="dlv_1",
            attempt=1,
            now=now,
            user_agent="test",
        )
    )


def registered(secret: str, standard: bool = True) -> ep.Endpoint:
    t0 = datetime.now(UTC)
    return ep.fold(
        [
            EndpointRegistered(
                "wh_1", "acct", "https://x.example/h", ("deal.attributed",), secret, "", standard, t0
            )
        ]
    )


def spec_python_verify(payload: str, signature: str, secret: str) -> bool:
    """The spec's Python example, verbatim."""
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


def test_the_spec_signature_verifies_with_the_spec_code() -> None:
    """X-Attribution-Signature is the hex HMAC-SHA256 of the raw body with the secret."""
    headers = headers_for(registered("your_webhook_secret", standard=False), datetime.now(UTC))
    assert spec_python_verify(BODY.decode(), headers["X-Attribution-Signature"], "your_webhook_secret")
    assert "webhook-signature" not in headers


def test_standard_webhooks_library_verifies_a_generated_secret() -> None:
    """With a whsec_ secret (what we generate), the standard's library verifies as it is given."""
    headers = headers_for(registered(GENERATED), datetime.now(UTC))
    assert Webhook(GENERATED).verify(BODY, headers)["id"] == "evt_123"


def test_standard_webhooks_library_verifies_a_chosen_secret_given_in_base64() -> None:
    """A secret of the user's choosing is used as its UTF-8 bytes; the library takes it base64'd."""
    secret = "your_webhook_secret"
    headers = headers_for(registered(secret), datetime.now(UTC))
    assert Webhook(base64.b64encode(secret.encode()).decode()).verify(BODY, headers)


def test_standard_webhooks_replay_window_refuses_old_deliveries() -> None:
    """The library's replay window applies to our timestamp header."""
    headers = headers_for(registered(GENERATED), datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(GENERATED).verify(BODY, headers)


def test_during_rotation_both_secrets_verify() -> None:
    """Receivers still on the old secret verify the Previous header and the standard's list."""
    now = datetime.now(UTC)
    new = "whsec_" + base64.b64encode(b"another-secret-of-24-byte").decode()
    endpoint = ep.evolve(registered(GENERATED), SecretRotated("wh_1", new, now + timedelta(hours=24), now))
    headers = headers_for(endpoint, now)
    assert spec_python_verify(BODY.decode(), headers["X-Attribution-Signature"], new)
    assert spec_python_verify(BODY.decode(), headers["X-Attribution-Signature-Previous"], GENERATED)
    assert Webhook(GENERATED).verify(BODY, headers)
    assert Webhook(new).verify(BODY, headers)


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
def test_signature_equals_the_standard_hmac_for_any_key_length(length: int) -> None:
    """The signer's precomputed HMAC states sign exactly as RFC 2104's HMAC-SHA256 does, for keys
    shorter than, equal to and longer than SHA-256's block, signing twice with one secret."""
    signer = HmacSigner()
    secret = ("sé€" * 100)[:length]
    for body in (BODY, b"", BODY * 40):
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        assert signer.sign(body, secret) == expected
        assert signer.sign(body, secret) == expected
