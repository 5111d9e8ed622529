"""Events and states stored before the flow policies (ADR 0015) still decode, with the policies off."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from attribution_webhooks.adapters.sql.codec import EventCodec, StoredEvent, decode_endpoint, encode_endpoint
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.events import BreakerOpened, EndpointRegistered, EndpointUpdated

NOW = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
OLD_REGISTERED = {
    "endpoint_id": "wh_1",
    "account_id": "acct_1",
    "url": "https://a.example/h",
    "event_types": ["deal.attributed"],
    "secret": "your_webhook_secret",
    "description": "",
    "standard_webhooks": False,
    "registered_at": "2024-01-20T15:00:00+00:00",
}


def test_an_old_registration_decodes_without_policies() -> None:
    """A registration row written before the policies decodes with no limit and no breaker."""
    event = EventCodec().decode(StoredEvent("endpoint.registered", 1, json.dumps(OLD_REGISTERED)))
    assert isinstance(event, EndpointRegistered)
    assert (event.rate_limit, event.rate_limit_burst, event.circuit_breaker_threshold) == (None, 0, None)


def test_an_old_update_decodes_as_changing_no_policy() -> None:
    """An update row without the policy fields leaves every policy as it was."""
    data = {"endpoint_id": "wh_1", "updated_at": "2024-01-20T15:00:00+00:00", "description": "x"}
    event = EventCodec().decode(StoredEvent("endpoint.updated", 1, json.dumps(data)))
    assert event == EndpointUpdated("wh_1", NOW, description="x")


def test_breaker_events_and_states_round_trip() -> None:
    """The new events and a state with an open breaker go through the codec unchanged."""
    codec = EventCodec()
    opened = BreakerOpened("wh_1", 3, NOW)
    assert codec.decode(codec.encode(opened)) == opened
    state = ep.fold(
        [
            EndpointRegistered(
                **{**OLD_REGISTERED, "event_types": ("deal.attributed",), "registered_at": NOW}
            ),
            opened,
        ]
    )  # type: ignore[arg-type]
    assert decode_endpoint(encode_endpoint(state)) == state
    old_state = json.loads(encode_endpoint(state))
    for name in ("rate_limit", "rate_limit_burst", "circuit_breaker_threshold", "circuit_breaker_opened_at"):
        old_state.pop(name)
    assert decode_endpoint(json.dumps(old_state)).circuit_breaker_opened_at is None
