"""The msgspec mirrors of the payloads: whatever they pass, the converter accepts too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_webhooks.adapters.payload_mirrors import _MIRRORS, passes
from attribution_webhooks.adapters.payloads import InvalidPayload, check_event_data
from attribution_webhooks.core.catalog import EVENT_TYPES
from attribution_webhooks.core.samples import SAMPLE_DATA

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_TIMES = st.sampled_from(["2024-01-20T15:00:00Z", "2024-01-20T15:00:00", "0999-01-01T00:00:00Z", "soon", ""])


def _accepted(event_type: str, data: Any) -> bool:
    try:
        check_event_data(event_type, data)
    except InvalidPayload:
        return False
    return True


def test_every_event_type_has_a_mirror() -> None:
    """No payload falls back to the converter on every event (that would be slow, not wrong)."""
    assert set(_MIRRORS) == set(EVENT_TYPES)


@settings(max_examples=400, deadline=None)
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    changes=st.lists(st.tuples(st.integers(0, 30), st.one_of(_JSON, _TIMES), st.booleans()), max_size=3),
)
def test_what_a_mirror_passes_the_converter_accepts(event_type: str, changes: list[Any]) -> None:
    """The sample with fields replaced, removed or added, anywhere in it: passes ⇒ accepted."""
    data = json.loads(json.dumps(SAMPLE_DATA[event_type]))
    for where, value, remove in changes:
        places = _places(data)
        target, key = places[where % len(places)]
        if remove and isinstance(target, dict):
            target.pop(key, None)
        elif isinstance(target, dict) and where % 3 == 0:
            target[f"extra{where}"] = value
        else:
            target[key] = value
    if passes(event_type, data):
        assert _accepted(event_type, data), data


def _places(value: Any) -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            found += _places(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            found += _places(item)
    return found


@pytest.mark.parametrize(
    ("change", "passes_too"),
    [
        ({}, True),
        ({"amount": 10000.0}, True),  # a number field takes a float
        ({"amount": True}, False),
        ({"closedAt": "2024-01-20T15:00:00"}, False),  # no offset
        ({"closedAt": 5}, False),
        ({"dealId": None}, False),
        ({"extra": 1}, False),
    ],
)
def test_the_sample_with_one_change(change: dict[str, Any], passes_too: bool) -> None:
    """Passing ones are accepted; the rest go to the converter, whose answer stands."""
    data = {**SAMPLE_DATA["deal.attributed"], **change}
    assert passes("deal.attributed", data) is passes_too
    assert _accepted("deal.attributed", data) is passes_too
