"""The event catalog's JSON form is the spec's, field for field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from attribution_webhooks.adapters.payloads import InvalidPayload, check_event_data, structure, unstructure
from attribution_webhooks.core.catalog import EVENT_TYPES, DealAttributed, payload_class
from attribution_webhooks.core.errors import UnknownEventType
from attribution_webhooks.core.wire import encode_json

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "webhooks.md"


def spec_examples() -> dict[str, dict[str, object]]:
    """The JSON example of each event type in the spec."""
    blocks = re.findall(r"```json\n(.*?)```", SPEC.read_text(encoding="utf-8"), flags=re.S)
    examples = [json.loads(block) for block in blocks]
    return {example["type"]: example for example in examples}


def test_the_spec_documents_exactly_the_catalog() -> None:
    """Four event types, no more, no fewer."""
    assert sorted(spec_examples()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_spec_example_round_trips_through_its_typed_payload(event_type: str) -> None:
    """data → typed payload (attrs, snake_case) → JSON: identical to the spec, keys in its order."""
    example = spec_examples()[event_type]
    payload = structure(example["data"], payload_class(event_type))
    assert isinstance(payload, payload_class(event_type))
    again = unstructure(payload)
    assert json.dumps(again) == json.dumps(example["data"])


def test_the_envelope_of_the_spec_example_is_byte_for_byte_the_spec() -> None:
    """The canonical body of the spec's deal.attributed example is its compact JSON."""
    example = spec_examples()["deal.attributed"]
    assert encode_json(example) == json.dumps(example, separators=(",", ":"), ensure_ascii=False)


def test_typed_payload_fields_are_snake_case() -> None:
    """The Python side reads as Python: deal_id, closed_at, partner_name."""
    payload = structure(spec_examples()["deal.attributed"]["data"], DealAttributed)
    assert payload.deal_id == "deal_xyz"
    assert payload.attribution[0].partner_name == "Acme Corp"
    assert payload.closed_at.isoformat() == "2024-01-20T15:00:00+00:00"


def test_every_wrong_field_is_named() -> None:
    """A wrong type, a missing field and an unknown one are all reported, each with its path."""
    data = {
        "dealId": 5,
        "amount": "10000",
        "closedAt": "2024-01-20T15:00:00Z",
        "model": "linear",
        "attribution": [{"partnerId": "p", "partnerName": "n", "credit": 1, "percentage": 1, "extra": 1}],
    }
    with pytest.raises(InvalidPayload) as error:
        check_event_data("deal.attributed", data)
    paths = {path for path, _ in error.value.errors}
    assert {"data.dealId", "data.amount", "data.attribution[0].extra"} <= paths


def test_unknown_event_types_are_refused() -> None:
    """deal.created is not in the catalog: the error lists the known types."""
    with pytest.raises(UnknownEventType, match=r"deal\.attributed"):
        payload_class("deal.created")
