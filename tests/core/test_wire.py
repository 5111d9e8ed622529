"""The canonical body: exactly what Node's ``JSON.stringify(JSON.parse(body))`` gives back."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.wire import (
    MAX_SAFE_INTEGER,
    encode_json,
    format_timestamp,
    js_number,
    parse_timestamp,
)

NODE = shutil.which("node")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (100.0, "100"),
        (0.1, "0.1"),
        (33.33, "33.33"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (1e-5, "0.00001"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (-2.5, "-2.5"),
        (1234567.891, "1234567.891"),
    ],
)
def test_numbers_print_as_javascript_prints_them(value: float, text: str) -> None:
    """Floats follow ECMAScript Number::toString, which is not Python's repr."""
    assert js_number(value) == text


def test_body_is_compact_utf8_with_spec_field_order() -> None:
    """No spaces, non-ASCII left as is, keys in insertion order: the spec's example comes out verbatim."""
    data = {"id": "evt_123", "type": "partner.created", "data": {"name": "Société 日本 🚀", "n": 5000}}
    assert (
        encode_json(data)
        == '{"id":"evt_123","type":"partner.created","data":{"name":"Société 日本 🚀","n":5000}}'
    )


def test_integer_like_keys_come_first_in_numeric_order() -> None:
    """JavaScript objects iterate array-index keys first, ascending, whatever the insertion order."""
    assert encode_json({"b": 1, "10": 2, "2": 3, "01": 4, "a": 5}) == '{"2":3,"10":2,"b":1,"01":4,"a":5}'


def test_control_characters_are_escaped_like_javascript() -> None:
    """Short escapes where JSON.stringify uses them, lowercase \\u00XX otherwise; U+2028 stays raw."""
    assert encode_json('a\n\t"\\\x01\x7f\u2028') == '"a\\n\\t\\"\\\\\\u0001\x7f\u2028"'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (MAX_SAFE_INTEGER + 1, r"2\^53"),
        (float("nan"), "NaN"),
        (float("inf"), "NaN and Infinity"),
        ("\ud800", "lone surrogate"),
        ({1: "x"}, "not a string"),
        (b"bytes", "not a JSON value"),
    ],
)
def test_values_javascript_cannot_hold_are_refused(value: object, reason: str) -> None:
    """Rather than change a value silently, the encoder refuses it and names the path."""
    with pytest.raises(ValidationError, match=reason) as error:
        encode_json({"data": [value]}, path="$")
    assert error.value.field.startswith("$.data[0]")


def test_largest_safe_integers_pass() -> None:
    """±(2^53-1) survive a JavaScript round trip, so they are allowed."""
    assert encode_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == "[9007199254740991,-9007199254740991]"


def test_timestamps_are_utc_with_z() -> None:
    """The spec's form, with milliseconds only when there are any; offsets are converted."""
    assert format_timestamp(datetime(2024, 1, 20, 15, 0, tzinfo=UTC)) == "2024-01-20T15:00:00Z"
    paris = timezone(timedelta(hours=1))
    assert (
        format_timestamp(datetime(2024, 1, 20, 16, 0, 0, 123456, tzinfo=paris)) == "2024-01-20T15:00:00.123Z"
    )
    assert parse_timestamp("2024-01-20T15:00:00Z") == datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="no time zone"):
        parse_timestamp("2024-01-20T15:00:00")
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2024, 1, 20))  # noqa: DTZ001  # the naive time is the point


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 20).map(str), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(json_values, min_size=50, max_size=50))
@settings(max_examples=6, deadline=None)
@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_node_json_stringify_reproduces_every_body_byte_for_byte(values: list[object]) -> None:
    """What the spec's Node.js receiver hashes, JSON.stringify(JSON.parse(body)), is our body."""
    bodies = [encode_json(value) for value in values]
    script = (
        "const lines = require('fs').readFileSync(0, 'utf8').split('\\n').filter(Boolean);"
        "process.stdout.write(JSON.stringify(lines.map(l => JSON.stringify(JSON.parse(JSON.parse(l))))));"
    )
    stdin = "\n".join(json.dumps(body) for body in bodies)
    assert NODE is not None
    out = subprocess.run([NODE, "-e", script], input=stdin, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == bodies


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_python_reads_back_the_same_value(value: object) -> None:
    """The spec's Python receiver parses what we send into the value we were given."""
    assert _same(json.loads(encode_json(value)), value)


def _same(parsed: object, original: object) -> bool:
    """Equal as JSON numbers: an integral float may come back as an int of the same value."""
    if isinstance(original, float):
        return isinstance(parsed, int | float) and not isinstance(parsed, bool) and float(parsed) == original
    if isinstance(original, dict):
        return (
            isinstance(parsed, dict)
            and parsed.keys() == original.keys()
            and all(_same(parsed[key], original[key]) for key in original)
        )
    if isinstance(original, list):
        return isinstance(parsed, list) and len(parsed) == len(original) and all(map(_same, parsed, original))
    return parsed == original


@given(json_values)
@settings(max_examples=500, deadline=None)
def test_the_fast_path_agrees_with_the_reference_encoder(value: object) -> None:
    """Where encode_json hands a value to Python's C encoder, the text is the reference's."""
    from attribution_webhooks.core.wire import _encode

    reference: list[str] = []
    _encode(value, reference, "$")
    assert encode_json(value) == "".join(reference)
