"""The endpoint aggregate, as given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.errors import InvalidTransition, UnknownEventType, ValidationError
from attribution_webhooks.core.events import (
    DisableReason,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EndpointUpdated,
    SecretRotated,
)

NOW = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
RULES = ep.EndpointRules()
SECRET = "your_webhook_secret"  # the spec's example secret must be accepted
REGISTERED = EndpointRegistered(
    "wh_1",
    "acct_1",
    "https://yourdomain.com/webhooks/attribution",
    ("deal.attributed",),
    SECRET,
    "",
    False,
    NOW,
)


def register(**changes: object) -> ep.Register:
    fields: dict[str, object] = {
        "endpoint_id": "wh_1",
        "account_id": "acct_1",
        "url": "https://yourdomain.com/webhooks/attribution",
        "event_types": ["deal.attributed", "partner.created"],
        "secret": SECRET,
        "now": NOW,
    }
    fields.update(changes)
    return ep.Register(**fields)  # type: ignore[arg-type]  # tests pass wrong types on purpose


def when(
    given: list[EndpointEvent], command: ep.EndpointCommand, rules: ep.EndpointRules = RULES
) -> list[EndpointEvent]:
    return ep.decide(command, ep.fold(given), rules)


def test_register_the_spec_example() -> None:
    """The spec's curl body registers an enabled endpoint for its two event types."""
    events = when([], register())
    assert events == [
        EndpointRegistered(
            "wh_1",
            "acct_1",
            "https://yourdomain.com/webhooks/attribution",
            ("deal.attributed", "partner.created"),
            SECRET,
            "",
            False,
            NOW,
        )
    ]
    assert ep.fold(events).status is ep.EndpointStatus.ENABLED


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "non-empty"),
        ("yourdomain.com/hook", "http\\(s\\) URL"),
        ("ftp://yourdomain.com/hook", "http\\(s\\) URL"),
        ("http://yourdomain.com/hook", "https://"),
        ("https:///hook", "no host"),
        ("https://yourdomain.com:99999/hook", "not a valid URL"),
        ("https://yourdomain.com/hook#part", "fragment"),
        ("https://your domain.com/hook", "white space"),
        ("https://yourdomain.com/" + "a" * 2100, "longer than"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    """Every malformed URL gets a ValidationError on the `url` field saying what is wrong."""
    with pytest.raises(ValidationError, match=reason) as error:
        when([], register(url=url))
    assert error.value.field == "url"


def test_development_rules_allow_plain_http() -> None:
    """The README demo and tests register http://127.0.0.1 receivers."""
    events = when([], register(url="http://127.0.0.1:8000/hook"), ep.EndpointRules(require_https=False))
    assert isinstance(events[0], EndpointRegistered)


@pytest.mark.parametrize(
    ("types", "error_type", "field"),
    [
        ([], ValidationError, "events"),
        ("deal.attributed", ValidationError, "events"),
        (["deal.attributed", "deal.created"], UnknownEventType, "events[1]"),
    ],
)
def test_event_lists_must_be_non_empty_and_known(
    types: object, error_type: type[Exception], field: str
) -> None:
    """An empty list, a bare string or an unknown type is refused, naming the element."""
    with pytest.raises(error_type) as error:
        when([], register(event_types=types))
    assert isinstance(error.value, ValidationError)
    assert error.value.field == field


def test_duplicate_event_types_are_folded() -> None:
    """Subscribing twice to one type is the same as once."""
    (event,) = when([], register(event_types=["deal.attributed", "deal.attributed"]))
    assert isinstance(event, EndpointRegistered)
    assert event.event_types == ("deal.attributed",)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [("short", "16 to 256"), ("a" * 20, "too easy"), ("with spaces in it ok", "printable"), (123, "string")],
)
def test_weak_secrets_are_refused(secret: object, reason: str) -> None:
    """Secrets must be long, varied, printable ASCII."""
    with pytest.raises(ValidationError, match=reason):
        when([], register(secret=secret))


def test_update_changes_only_what_was_given() -> None:
    """The spec's PUT {"events": ["deal.attributed"]} changes the subscription and nothing else."""
    events = when([register_event()], ep.Update(NOW, event_types=["partner.created"]))
    assert events == [EndpointUpdated("wh_1", NOW, event_types=("partner.created",))]


def test_update_with_the_same_values_records_nothing() -> None:
    """Idempotent: sending the current values again is not a change."""
    assert when([register_event()], ep.Update(NOW, event_types=["deal.attributed"])) == []


def test_update_with_nothing_is_an_error() -> None:
    """An empty update is almost certainly a client bug: say so."""
    with pytest.raises(ValidationError, match="nothing to update"):
        when([register_event()], ep.Update(NOW))


def test_rotation_keeps_the_old_secret_for_the_grace_period() -> None:
    """Both secrets sign until the grace period ends; then only the new one does."""
    new_secret = "whsec_bmV3LXNlY3JldC1mb3ItdGVzdHM="
    events = when([register_event()], ep.RotateSecret(new_secret, timedelta(hours=24), NOW))
    assert events == [SecretRotated("wh_1", new_secret, NOW + timedelta(hours=24), NOW)]
    state = ep.fold([register_event(), *events])
    assert state.signing_secrets(NOW + timedelta(hours=23)) == (new_secret, SECRET)
    assert state.signing_secrets(NOW + timedelta(hours=24)) == (new_secret,)


def test_rotation_without_grace_drops_the_old_secret_at_once() -> None:
    """For a leaked secret: zero grace."""
    new_secret = "whsec_bmV3LXNlY3JldC1mb3ItdGVzdHM="
    events = when([register_event()], ep.RotateSecret(new_secret, timedelta(0), NOW))
    assert ep.fold([register_event(), *events]).signing_secrets(NOW) == (new_secret,)


def test_disable_and_enable_are_idempotent() -> None:
    """Disabling a disabled endpoint, or enabling an enabled one, records nothing."""
    disabled = EndpointDisabled("wh_1", DisableReason.MANUAL, NOW)
    assert when([register_event()], ep.Disable(NOW)) == [disabled]
    assert when([register_event(), disabled], ep.Disable(NOW)) == []
    assert when([register_event(), disabled], ep.Enable(NOW)) == [EndpointEnabled("wh_1", NOW)]
    assert when([register_event()], ep.Enable(NOW)) == []


def test_auto_disable_needs_the_whole_period() -> None:
    """Failing for less than the period (3 days by default) is not enough."""
    since = NOW - timedelta(days=3)
    assert when([register_event()], ep.AutoDisable(since, NOW)) == [
        EndpointDisabled("wh_1", DisableReason.FAILING, NOW, since)
    ]
    with pytest.raises(InvalidTransition, match="less than"):
        when([register_event()], ep.AutoDisable(NOW - timedelta(days=2), NOW))


def test_a_deleted_endpoint_takes_no_commands() -> None:
    """After deletion every command is refused."""
    deleted = EndpointDeleted("wh_1", NOW)
    assert when([register_event()], ep.Delete(NOW)) == [deleted]
    for command in (ep.Enable(NOW), ep.Disable(NOW), ep.Delete(NOW), ep.Update(NOW, description="x")):
        with pytest.raises(InvalidTransition, match="deleted"):
            when([register_event(), deleted], command)


def test_register_twice_is_refused() -> None:
    """Ids are never reused."""
    with pytest.raises(InvalidTransition, match="already exists"):
        when([register_event()], register())


def register_event() -> EndpointRegistered:
    return REGISTERED
