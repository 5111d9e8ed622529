"""``canonical_text``: msgspec's text of parsed data where it is certainly ``encode_json``'s."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_webhooks.adapters.canonical import canonical_text
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.core.wire import MAX_DEPTH, MAX_SAFE_INTEGER, encode_json

# What a JSON parser makes, with the numbers and keys where the two encoders may differ.
parsed_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-4, 9.99e-5, 1e16, 1e16 - 2, 0.1, -0.0, 1.0, 123456789012345.6, 5e-324])
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 20).map(str), children, max_size=4)
    ),
    max_leaves=20,
)


def _reference(value: object) -> str | None:
    try:
        return encode_json(value, "data")
    except ValidationError:
        return None


@given(parsed_values)
@settings(max_examples=2000)
def test_a_text_it_gives_is_encode_jsons_text(value: object) -> None:
    """Whenever it answers, the answer is exactly ``encode_json``'s (which would not refuse it)."""
    text = canonical_text(value)
    if text is not None:
        assert text == _reference(value)


@pytest.mark.parametrize("event_type", sorted(SAMPLE_DATA))
def test_the_catalogs_examples_take_the_fast_path(event_type: str) -> None:
    """Every example of the catalog, as parsed from JSON, is answered (not left to the walk)."""
    data = json.loads(json.dumps(SAMPLE_DATA[event_type]))
    assert canonical_text(data) == encode_json(data)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.0},
        {"a": 1e16},
        {"a": 0.00001},
        {"a": 2**53},
        {"a": -(2**60)},
        {"0": 1, "b": 2},
        {"a": [{"1x": 1}]},
        {"a": "\ud800"},
        {"a": 1e300},
    ],
)
def test_what_might_differ_is_left_to_encode_json(value: Any) -> None:
    """Integral, tiny or huge floats, big integers, digit keys and lone surrogates: no answer."""
    assert canonical_text(value) is None


def test_strings_that_look_like_numbers_are_answered() -> None:
    """Numbers inside strings (an exponent, ``1.0``) are text, not numbers: answered."""
    value = {"a": "1e5 1.0 0.00001 12345678901234567", "b": 'q"1.0"', "c": "\\"}
    assert canonical_text(value) == encode_json(value)


def test_too_deep_is_left_to_encode_json() -> None:
    """Data nesting past ``MAX_DEPTH`` with its envelope is not answered (encode_json refuses it)."""
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    assert canonical_text(value) is None
    assert canonical_text(value[0][0]) is not None
