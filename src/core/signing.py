"""The headers of a delivery request, signatures included.

``X-Attribution-Signature`` is what the spec documents: the hex HMAC-SHA256 of the exact body,
keyed by the endpoint's current secret. While a rotated-out secret is still in its grace period,
``X-Attribution-Signature-Previous`` carries the signature by that secret. Endpoints that opt in
also get the Standard Webhooks headers, whose ``webhook-signature`` lists every valid secret.
"""

from __future__ import annotations

from datetime import datetime

from .endpoint import Endpoint
from .ports import Signer

__all__ = ["SIGNATURE_HEADER", "delivery_headers"]

SIGNATURE_HEADER = "X-Attribution-Signature"


def delivery_headers(
    signer: Signer,
    endpoint: Endpoint,
    *,
    body: bytes,
    event_id: str,
    event_type: str,
    delivery_id: str,
    attempt: int,
    now: datetime,
    user_agent: str,
    test: bool = False,
) -> tuple[tuple[str, str], ...]:
    """Every header of one attempt, in a stable order."""
    secrets = endpoint.signing_secrets(now)
    timestamp = int(now.timestamp())
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", user_agent),
        (SIGNATURE_HEADER, signer.sign(body, secrets[0])),
    ]
    if len(secrets) > 1:
        headers.append((f"{SIGNATURE_HEADER}-Previous", signer.sign(body, secrets[1])))
    headers += [
        ("X-Attribution-Event-Id", event_id),
        ("X-Attribution-Event-Type", event_type),
        ("X-Attribution-Delivery-Id", delivery_id),
        ("X-Attribution-Attempt", str(attempt)),
        ("X-Attribution-Timestamp", str(timestamp)),
    ]
    if test:
        headers.append(("X-Attribution-Test", "true"))
    if endpoint.standard_webhooks:
        signatures = " ".join(f"v1,{signer.sign_standard(event_id, timestamp, body, s)}" for s in secrets)
        headers += [
            ("webhook-id", event_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", signatures),
        ]
    return tuple(headers)
