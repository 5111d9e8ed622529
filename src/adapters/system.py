"""The real clock, ids and randomness: the only places that read the wall clock or the OS's entropy."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import threading
import time
from datetime import UTC, datetime

__all__ = ["SystemClock", "SystemRandom", "UlidGenerator", "id_time"]

# Crockford's lowercase base32, whose order is the order of the values: ids then sort as their
# numbers do. Written ten bits (two characters) at a time from a table: base64's b32encode is
# Python code, about 7 µs an id, and a published event takes an id per delivery.
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_SHIFTS = tuple(range(120, -1, -10))  # 13 pairs: the 128 bits then two padding bits


_VALUES = {ch: n for n, ch in enumerate(_CROCKFORD)}
_ULID = 26


def id_time(identifier: str) -> datetime | None:
    """When an id made by ``UlidGenerator`` was made (to the millisecond); None for any other
    text, such as an id a client chose."""
    _, _, text = identifier.rpartition("_")
    if len(text) != _ULID or text != text.lower():
        return None
    encoded = text.encode("ascii", "replace")
    if encoded.translate(None, b"0123456789abcdefghjkmnpqrstvwxyz"):
        return None  # a letter outside the alphabet
    high = 0
    for ch in text[:10]:  # the first 50 bits: the 48 bits of milliseconds, then 2 random ones
        high = high << 5 | _VALUES[ch]
    try:
        return datetime.fromtimestamp((high >> 2) / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # past the year 9999: not one of ours
        return None


class SystemClock:
    """Implements ``Clock`` with the wall clock and asyncio's timers."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class UlidGenerator:
    """Implements ``IdGenerator``: ``prefix_`` + a ULID in lowercase Crockford base32.

    48 bits of milliseconds then 80 random bits; within one millisecond the random part is
    incremented, so ids from one process are strictly increasing (cursor pagination relies on it).
    The 128 bits are written as 26 base32 characters, most significant first (the last character
    carries two padding bits), so string order is numeric order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0
        self._stem = ""  # the last id's first 24 characters

    def new_id(self, prefix: str) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._last_random += 1
                low = self._last_random & 0xFF
                if low:
                    # No carry past the last 8 bits, which are all the last two characters hold
                    # of the value (then the 2 padding bits): only those change. A batch of ids
                    # in one millisecond costs a lookup each, not 13.
                    return prefix + "_" + self._stem + _PAIRS[low << 2]
            else:
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
            self._last_ms = ms
            value = (ms << 80) | (self._last_random & ((1 << 80) - 1))
            text = _crockford(value)
            self._stem = text[:24]
        return prefix + "_" + text


def _crockford(value: int) -> str:
    """The 128-bit ``value`` as 26 characters of Crockford base32, most significant first."""
    padded, pairs = value << 2, _PAIRS
    return "".join([pairs[(padded >> shift) & 1023] for shift in _SHIFTS])


class SystemRandom:
    """Implements ``RandomSource``: jitter from ``random``, secrets from the OS."""

    def __init__(self) -> None:
        self._random = random.Random()

    def random(self) -> float:
        return self._random.random()

    def token_bytes(self, size: int) -> bytes:
        return secrets.token_bytes(size)
