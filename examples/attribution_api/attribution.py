"""Attribution models: how a deal's amount is credited to the partners whose touchpoints led to it.

Pure functions over touchpoints (no database, no clock). A model gives every touchpoint a
weight; a partner's share is the sum of its touchpoints' weights; credits are the amount split
in proportion, in whole currency units, by largest remainder (Hamilton's method): each partner
gets the whole part of its exact share, and the units left over go to the largest fractional
parts (the earlier partner wins a tie). Credits so sum exactly to the amount, and each is less
than one unit from its exact share. Percentages are the same split of 100.00, to the hundredth.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from attrs import frozen

__all__ = ["Model", "Share", "Touchpoint", "attribute", "largest_remainder", "weights"]

DEFAULT_HALF_LIFE = timedelta(days=7)


class Model(StrEnum):
    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"  # 40 % first, 40 % last, 20 % across the middle


@frozen
class Touchpoint:
    """A partner's touchpoint with the user (a click, a signup, a demo...), at a time."""

    partner_id: str
    at: datetime


@frozen
class Share:
    """A partner's credit (currency units) and percentage (a Decimal with two places)."""

    partner_id: str
    credit: int
    percentage: Decimal


def weights(
    model: Model,
    touchpoints: Sequence[Touchpoint],
    closed_at: datetime,
    half_life: timedelta = DEFAULT_HALF_LIFE,
) -> list[Fraction]:
    """Each touchpoint's weight under ``model``; ``touchpoints`` in time order."""
    n = len(touchpoints)
    if n == 0:
        return []
    if model is Model.FIRST_TOUCH:
        return [Fraction(1)] + [Fraction(0)] * (n - 1)
    if model is Model.LAST_TOUCH:
        return [Fraction(0)] * (n - 1) + [Fraction(1)]
    if model is Model.LINEAR:
        return [Fraction(1)] * n
    if model is Model.TIME_DECAY:
        if half_life <= timedelta(0):
            raise ValueError("the half-life must be positive")
        # Half the weight per half-life before the close (exact for whole half-lives: powers
        # of two are exact floats). Touchpoints a thousand half-lives old weigh nothing.
        return [Fraction(2.0 ** -((closed_at - t.at) / half_life)) for t in touchpoints]
    if n == 1:
        return [Fraction(1)]
    if n == 2:
        return [Fraction(1, 2), Fraction(1, 2)]
    middle = Fraction(1, 5) / (n - 2)
    return [Fraction(2, 5)] + [middle] * (n - 2) + [Fraction(2, 5)]


def largest_remainder(total: int, parts: Sequence[Fraction]) -> list[int]:
    """``total`` split in proportion to ``parts`` (non-negative, not all zero) into whole numbers
    that sum to exactly ``total``."""
    whole = sum(parts, Fraction(0))
    if whole <= 0 or any(p < 0 for p in parts):
        raise ValueError("the parts must be non-negative and not all zero")
    quotas = [total * p / whole for p in parts]
    floors = [q.numerator // q.denominator for q in quotas]
    left = total - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def attribute(
    amount: int,
    model: Model,
    touchpoints: Sequence[Touchpoint],
    closed_at: datetime,
    half_life: timedelta = DEFAULT_HALF_LIFE,
) -> list[Share]:
    """Credit ``amount`` to the partners of ``touchpoints`` (in any order; those after
    ``closed_at`` do not count) by ``model``. Partners in the order of their first touchpoint;
    those a model gives no weight to are left out. Empty when no touchpoint counts."""
    counted = sorted((t for t in touchpoints if t.at <= closed_at), key=lambda t: t.at)
    by_partner: dict[str, Fraction] = {}
    for touchpoint, weight in zip(counted, weights(model, counted, closed_at, half_life), strict=True):
        by_partner[touchpoint.partner_id] = by_partner.get(touchpoint.partner_id, Fraction(0)) + weight
    partners = [p for p, w in by_partner.items() if w > 0]
    if not partners:
        return []
    parts = [by_partner[p] for p in partners]
    credits = largest_remainder(amount, parts)
    hundredths = largest_remainder(10_000, parts)
    return [
        Share(p, credit, Decimal(h) / 100) for p, credit, h in zip(partners, credits, hundredths, strict=True)
    ]
