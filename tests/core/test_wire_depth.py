"""``check_depth``: its fast path (many brackets, shallow: a batch of events) agrees with the
exact walk, whatever strings, escapes and brackets inside strings the text holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.wire import MAX_DEPTH, check_depth

#: Strings full of what could fool a scanner: brackets, quotes and backslashes.
_TRICKY = st.text(alphabet='[]{}"\\\\ a\n', max_size=8)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(levels: int, leaf: Any) -> Any:
    for index in range(levels):
        leaf = [leaf] if index % 2 else {"k": leaf}
    return leaf


_VALUES = st.recursive(
    st.none() | st.integers() | _TRICKY,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TRICKY, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(_VALUES, min_size=1, max_size=20),
    deep=st.integers(0, MAX_DEPTH + 3),
    spot=st.integers(0, 19),
)
def test_the_depth_check_refuses_exactly_what_nests_too_deep(items: list[Any], deep: int, spot: int) -> None:
    """A document with many brackets is refused if and only if it nests deeper than MAX_DEPTH."""
    items[spot % len(items)] = _nested(deep, items[spot % len(items)])
    document = {"events": items}
    text = json.dumps(document)
    for form in (text, text.encode()):
        if _depth(document) > MAX_DEPTH:
            with pytest.raises(ValidationError):
                check_depth(form)
        else:
            check_depth(form)


def test_a_thousand_shallow_events_pass_and_one_deep_one_is_named() -> None:
    """A batch-sized body passes; one event too deep in it is refused naming its place."""
    events = [{"type": "t", "data": {"a": [1, {"b": "]]]\\"}]}} for _ in range(1000)]
    check_depth(json.dumps({"events": events}).encode())
    events[7] = {"type": "t", "data": _nested(MAX_DEPTH, "x")}
    with pytest.raises(ValidationError) as refused:
        check_depth(json.dumps({"events": events}).encode())
    assert refused.value.field.startswith("events[7].data")


def test_an_unclosed_deep_prefix_is_refused() -> None:
    """Brackets that never close still count: the parser must not recurse into them."""
    with pytest.raises(ValidationError):
        check_depth("[1, " + "[" * (MAX_DEPTH + 1) + "2")
