"""The wall clock at the edges, under freezegun: the system clock, ids, and the replay window.

Everywhere inside, time is the Clock port (a fake or the simulation's virtual time); only the
adapters read the wall clock, and these tests freeze it there (ADR 0002, "Time").
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.system import SystemClock, UlidGenerator
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.events import EndpointRegistered
from attribution_webhooks.core.signing import delivery_headers

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
BODY = b'{"id":"evt_123","type":"deal.attributed","timestamp":"2024-01-20T15:00:00Z","data":{}}'
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _endpoint() -> ep.Endpoint:
    return ep.fold(
        [
            EndpointRegistered(
                "wh_1", "acct", "https://x.example/h", ("deal.attributed",), SECRET, "", True, T0
            )
        ]
    )


def _signed_now() -> dict[str, str]:
    """Headers for a delivery sent now, by the system clock, as the worker builds them."""
    return dict(
        delivery_headers(
            HmacSigner(),
            _endpoint(),
            body=BODY,
            event_id="evt_123",
            event_type="deal.attributed",
            delivery_id="dlv_1",
            attempt=1,
            now=SystemClock().now(),
            user_agent="test",
        )
    )


def _ulid_ms(new_id: str) -> int:
    """The milliseconds a ULID id carries in its first 10 characters (48 bits, then 2 of randomness)."""
    value = 0
    for char in new_id.split("_", 1)[1][:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value >> 2


def test_the_system_clock_reads_aware_utc_wall_time() -> None:
    """SystemClock.now() is the wall clock's moment, timezone-aware in UTC, and moves with it."""
    with freeze_time(T0) as frozen:
        now = SystemClock().now()
        assert now == T0
        assert now.utcoffset() == timedelta(0)
        frozen.tick(timedelta(seconds=90))
        assert SystemClock().now() == T0 + timedelta(seconds=90)


def test_ids_carry_the_wall_clock_millisecond_and_sort_in_time_order() -> None:
    """A ULID holds the millisecond it was made; later ids sort after, and so do ids of one millisecond."""
    # (A tick of one second: freezegun's time_ns goes through a float, which can fall a hair short of a millisecond.)
    ids = UlidGenerator()
    with freeze_time(T0) as frozen:
        first, same_ms = ids.new_id("dlv"), ids.new_id("dlv")
        frozen.tick(timedelta(seconds=1))
        later = ids.new_id("dlv")
    assert _ulid_ms(first) == _ulid_ms(same_ms) == int(T0.timestamp() * 1000)
    assert _ulid_ms(later) == _ulid_ms(first) + 1000
    assert first < same_ms < later


def test_the_timestamp_headers_are_the_moment_of_sending() -> None:
    """X-Attribution-Timestamp and webhook-timestamp are the sending moment in Unix seconds."""
    with freeze_time(T0 + timedelta(milliseconds=999)):
        headers = _signed_now()
    assert headers["X-Attribution-Timestamp"] == headers["webhook-timestamp"] == str(int(T0.timestamp()))


@pytest.mark.parametrize(
    ("verified_after", "refusal"),
    [
        (timedelta(0), None),
        (timedelta(minutes=4, seconds=59), None),
        (timedelta(minutes=5, seconds=1), "too old"),
        (-timedelta(minutes=5, seconds=1), "too new"),
        (-timedelta(minutes=4, seconds=59), None),
    ],
)
def test_the_standard_webhooks_replay_window_is_five_minutes_either_way(
    verified_after: timedelta, refusal: str | None
) -> None:
    """A receiver using the standard's library accepts our delivery within five minutes of its
    timestamp, and refuses it as a replay (or from the future) beyond."""
    with freeze_time(T0) as frozen:
        headers = _signed_now()
        frozen.move_to(T0 + verified_after)
        if refusal is None:
            assert Webhook(SECRET).verify(BODY, headers)["id"] == "evt_123"
        else:
            with pytest.raises(WebhookVerificationError, match=refusal):
                Webhook(SECRET).verify(BODY, headers)
