"""The example's attribution models: credits computed by hand for every model, and, for any
touchpoints, amount and model, credits that sum exactly to the amount and percentages to 100."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution_api.attribution import Model, Touchpoint, attribute, largest_remainder, weights

CLOSE = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _touches(*partners_days_before: tuple[str, float]) -> list[Touchpoint]:
    return [Touchpoint(p, CLOSE - DAY * days) for p, days in partners_days_before]


def _credits(
    amount: int, model: Model, touches: list[Touchpoint], **kw: timedelta
) -> list[tuple[str, int, str]]:
    return [
        (s.partner_id, s.credit, str(s.percentage)) for s in attribute(amount, model, touches, CLOSE, **kw)
    ]


# A user touched by A (10 days before the close), B (5), C (2), then A again (1).
JOURNEY = _touches(("A", 10), ("B", 5), ("C", 2), ("A", 1))


def test_first_touch_credits_the_partner_of_the_earliest_touchpoint() -> None:
    """A touched first: all 1,000 to A, and partners with no weight are not listed."""
    assert _credits(1000, Model.FIRST_TOUCH, JOURNEY) == [("A", 1000, "100")]


def test_last_touch_credits_the_partner_of_the_latest_touchpoint() -> None:
    """C's touch is not the last one; A's second is: all to A. Without it, all to C."""
    assert _credits(1000, Model.LAST_TOUCH, JOURNEY) == [("A", 1000, "100")]
    assert _credits(1000, Model.LAST_TOUCH, JOURNEY[:3]) == [("C", 1000, "100")]


def test_linear_splits_evenly_per_touchpoint() -> None:
    """Four touchpoints of 250 each: A has two of them (500), B and C one (250)."""
    assert _credits(1000, Model.LINEAR, JOURNEY) == [("A", 500, "50"), ("B", 250, "25"), ("C", 250, "25")]


def test_linear_gives_the_leftover_unit_to_the_largest_remainder_then_the_earlier_partner() -> None:
    """100 over three: 33.33… each, the one unit left goes to the first partner; percentages
    33.34 / 33.33 / 33.33."""
    assert _credits(100, Model.LINEAR, JOURNEY[:3]) == [
        ("A", 34, "33.34"),
        ("B", 33, "33.33"),
        ("C", 33, "33.33"),
    ]


def test_time_decay_halves_the_weight_every_half_life() -> None:
    """Half-life 7 days; touchpoints 14, 7 and 0 days before the close weigh 1/4, 1/2 and 1
    (7/4 in all): 7,000 splits 1,000 / 2,000 / 4,000."""
    touches = _touches(("A", 14), ("B", 7), ("C", 0))
    assert _credits(7000, Model.TIME_DECAY, touches, half_life=7 * DAY) == [
        ("A", 1000, "14.29"),
        ("B", 2000, "28.57"),
        ("C", 4000, "57.14"),
    ]


def test_time_decay_half_life_is_configurable() -> None:
    """With a 14-day half-life, a touchpoint 14 days before the close weighs 1/2 against 1."""
    touches = _touches(("A", 14), ("C", 0))
    assert _credits(3000, Model.TIME_DECAY, touches, half_life=14 * DAY) == [
        ("A", 1000, "33.33"),
        ("C", 2000, "66.67"),
    ]


def test_position_based_gives_forty_percent_to_each_end_and_twenty_to_the_middle() -> None:
    """A…A: first and last are both A (80 %), B and C share the middle 20 %."""
    assert _credits(1000, Model.POSITION_BASED, JOURNEY) == [
        ("A", 800, "80"),
        ("B", 100, "10"),
        ("C", 100, "10"),
    ]
    four = _touches(("A", 4), ("B", 3), ("C", 2), ("D", 1))
    assert _credits(1000, Model.POSITION_BASED, four) == [
        ("A", 400, "40"),
        ("B", 100, "10"),
        ("C", 100, "10"),
        ("D", 400, "40"),
    ]


def test_position_based_with_one_or_two_touchpoints() -> None:
    """One touchpoint takes everything; two split evenly."""
    assert _credits(999, Model.POSITION_BASED, JOURNEY[:1]) == [("A", 999, "100")]
    assert _credits(999, Model.POSITION_BASED, JOURNEY[:2]) == [("A", 500, "50"), ("B", 499, "50")]


def test_touchpoints_after_the_close_do_not_count_and_none_means_no_attribution() -> None:
    """A touchpoint after the deal closed earns nothing; with no touchpoint, nobody is credited."""
    later = [*JOURNEY[:1], Touchpoint("Z", CLOSE + DAY)]
    assert _credits(1000, Model.LAST_TOUCH, later) == [("A", 1000, "100")]
    assert _credits(1000, Model.LINEAR, []) == []


def test_largest_remainder_refuses_parts_that_split_nothing() -> None:
    """All-zero or negative weights are a bug, said as such."""
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder(10, [Fraction(0), Fraction(0)])
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder(10, [Fraction(1), Fraction(-1, 2)])


touch_lists = st.lists(
    st.tuples(st.sampled_from("ABCDEFG"), st.floats(min_value=0, max_value=90, allow_nan=False)),
    min_size=1,
    max_size=30,
)


@given(
    amount=st.integers(min_value=1, max_value=2**53 - 1),
    model=st.sampled_from(list(Model)),
    journey=touch_lists,
    half_life_days=st.floats(min_value=0.5, max_value=60),
)
def test_credits_sum_exactly_to_the_amount_and_percentages_to_one_hundred(
    amount: int, model: Model, journey: list[tuple[str, float]], half_life_days: float
) -> None:
    """For any deal: credits are whole, non-negative, sum to the amount and are each less than
    one unit from the partner's exact share; percentages have two places and sum to 100."""
    touches = _touches(*journey)
    half_life = DAY * half_life_days
    shares = attribute(amount, model, touches, CLOSE, half_life)
    assert shares, "every model credits someone when a touchpoint counts"
    assert sum(s.credit for s in shares) == amount
    assert sum(s.percentage for s in shares) == Decimal(100)
    assert all(s.credit >= 0 and s.percentage == s.percentage.quantize(Decimal("0.01")) for s in shares)
    assert len({s.partner_id for s in shares}) == len(shares)
    # Each credit is its exact share rounded down or up.
    ordered = sorted(touches, key=lambda t: t.at)
    exact: dict[str, Fraction] = {}
    for touch, weight in zip(ordered, weights(model, ordered, CLOSE, half_life), strict=True):
        exact[touch.partner_id] = exact.get(touch.partner_id, Fraction(0)) + weight
    total = sum(exact.values(), Fraction(0))
    for share in shares:
        quota = amount * exact[share.partner_id] / total
        assert quota - 1 < share.credit < quota + 1
