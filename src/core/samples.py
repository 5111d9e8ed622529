"""A realistic ``data`` object for each event type: the spec's own examples.

Used for "Send Test Event" and as the example shown next to each type's schema.
"""

from __future__ import annotations

from collections.abc import Mapping

from .catalog import EventType
from .operational import OPERATIONAL_SAMPLES
from .wire import JsonValue

__all__ = ["SAMPLE_DATA"]

SAMPLE_DATA: Mapping[str, Mapping[str, JsonValue]] = {
    EventType.DEAL_ATTRIBUTED: {
        "dealId": "deal_xyz",
        "amount": 10000,
        "closedAt": "2024-01-20T15:00:00Z",
        "model": "linear",
        "attribution": [
            {"partnerId": "partner_abc", "partnerName": "Acme Corp", "credit": 5000, "percentage": 50},
            {"partnerId": "partner_xyz", "partnerName": "XYZ Inc", "credit": 5000, "percentage": 50},
        ],
    },
    EventType.PARTNER_CREATED: {
        "id": "partner_abc",
        "name": "Acme Corp",
        "type": "referral",
        "status": "active",
    },
    EventType.PARTNER_UPDATED: {
        "id": "partner_abc",
        "name": "Acme Corporation",
        "status": "inactive",
        "changes": {
            "name": {"old": "Acme Corp", "new": "Acme Corporation"},
            "status": {"old": "active", "new": "inactive"},
        },
    },
    EventType.EVENT_TRACKED: {
        "id": "evt_xyz",
        "userId": "user_123",
        "partnerId": "partner_abc",
        "type": "click",
    },
    **OPERATIONAL_SAMPLES,
}
