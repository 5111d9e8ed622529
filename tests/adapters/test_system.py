"""The real clock, ids and randomness."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, timedelta

import pytest

from attribution_webhooks.adapters import system
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator, id_time


def test_ids_are_unique_and_sort_in_creation_order() -> None:
    """Cursor pagination relies on later ids sorting after earlier ones, even within a millisecond."""
    ids = UlidGenerator()
    made = [ids.new_id("dlv") for _ in range(50_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"dlv_[0-9a-hjkmnp-tv-z]{26}", ident) for ident in made[:100])


def test_the_clock_is_aware_utc() -> None:
    """No naive datetimes leave the clock."""
    assert SystemClock().now().tzinfo is UTC


def test_randomness_is_in_range_and_secrets_are_fresh() -> None:
    """random() in [0, 1); token bytes differ every time."""
    source = SystemRandom()
    assert all(0.0 <= source.random() < 1.0 for _ in range(1000))
    assert source.token_bytes(24) != source.token_bytes(24)


def test_ids_are_written_as_base32_of_their_bits() -> None:
    """The table-driven encoding writes what base64's base32 (mapped to Crockford's letters) writes."""
    import base64
    import random

    from attribution_webhooks.adapters.system import _crockford

    alphabet = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz")
    sample = random.Random(7)
    for value in [0, 1, (1 << 128) - 1, *(sample.getrandbits(128) for _ in range(2000))]:
        expected = base64.b32encode(value.to_bytes(16, "big"))[:26].translate(alphabet).decode()
        assert _crockford(value) == expected


def test_an_id_tells_when_it_was_made() -> None:
    """``id_time`` reads the millisecond a ULID id was made (retention's 410 for deliveries)."""
    clock = SystemClock()
    before = clock.now()
    made = id_time(UlidGenerator().new_id("dlv"))
    after = clock.now()
    assert made is not None
    assert before - timedelta(milliseconds=1) <= made <= after


@pytest.mark.parametrize(
    "ident", ["evt_order-42", "dlv_1", "dlv_" + "u" * 26, "dlv_" + "Z" * 26, "dlv_" + "z" * 26]
)
def test_other_ids_have_no_time(ident: str) -> None:
    """A client's own id, a short one, letters outside the alphabet or past the year 9999: None."""
    assert id_time(ident) is None


def test_ids_of_one_millisecond_count_up_by_one_across_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids made in one millisecond are the previous id's value plus one, carries included (the
    generator rewrites only the last two characters when nothing carries past them)."""
    monkeypatch.setattr(system.time, "time_ns", lambda: 1_764_000_000_000_000_000)
    ids = UlidGenerator()
    ids.new_id("x")
    # Ending in 0xfeff: the next id carries (and is written whole), then every 256th, one of
    # them into the third byte.
    ids._last_random = (ids._last_random | 0xFFFF) - 0x100
    values = [_value(ids.new_id("dlv")) for _ in range(1_200)]
    assert all(b - a == 1 for a, b in itertools.pairwise(values))


def _value(identifier: str) -> int:
    """The 128-bit number an id's 26 characters write."""
    text = identifier.rpartition("_")[2]
    padded = 0
    for ch in text:
        padded = padded << 5 | "0123456789abcdefghjkmnpqrstvwxyz".index(ch)
    return padded >> 2
