"""An endpoint's fields as commands give them: the shape of a webhook URL, its event types, its
secret, its description; and the service's rules they are checked against. Pure checks that
raise the core's ``ValidationError`` naming the field."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

from attrs import frozen

from .catalog import check_subscribable_type
from .errors import ValidationError

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_ROTATION_GRACE",
    "MAX_SECRET_LENGTH",
    "MAX_URL_LENGTH",
    "EndpointRules",
    "validate_description",
    "validate_event_types",
    "validate_flag",
    "validate_secret",
    "validate_url",
]

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 512
MAX_SECRET_LENGTH = 256
MAX_ROTATION_GRACE = timedelta(days=7)


@frozen
class EndpointRules:
    """The service's settings that endpoint commands are checked against."""

    require_https: bool = True
    min_secret_length: int = 16
    min_distinct_secret_chars: int = 8
    auto_disable_after: timedelta = timedelta(days=3)


def validate_url(url: object, require_https: bool, field: str = "url") -> str:
    """Check the shape of a webhook URL. Whether its host is reachable and public is the transport's check."""
    if not isinstance(url, str) or not url:
        raise ValidationError(field, "give the endpoint's URL as a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(field, f"longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValidationError(field, "contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValidationError(field, f"not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationError(field, f"must be an http(s) URL, got scheme {parts.scheme!r}")
    if require_https and scheme != "https":
        raise ValidationError(field, "must use https:// (plain http:// is allowed only in development mode)")
    if not parts.hostname:
        raise ValidationError(field, "has no host name")
    if "@" in parts.netloc:
        # A password in a URL is shown wherever the URL is (lists, logs, the dashboard): it would
        # be a secret in plain sight. Receivers authenticate requests by the signature instead.
        raise ValidationError(
            field,
            "must not contain a user name or password (user:pass@host): "
            "verify the X-Attribution-Signature header instead",
        )
    if port == 0:
        raise ValidationError(field, "port 0 is not a valid destination")
    if parts.fragment or url.endswith("#"):
        raise ValidationError(field, "must not contain a #fragment, which is never sent")
    return url


def validate_event_types(event_types: object, field: str = "events") -> tuple[str, ...]:
    """A non-empty list of known event types (operational ones included), duplicates removed,
    order kept."""
    if isinstance(event_types, str) or not isinstance(event_types, Iterable):
        raise ValidationError(field, 'give a list of event types, e.g. ["deal.attributed"]')
    checked: dict[str, None] = {}
    for index, event_type in enumerate(event_types):
        checked[check_subscribable_type(event_type, f"{field}[{index}]").value] = None
    if not checked:
        raise ValidationError(field, "subscribe to at least one event type")
    return tuple(checked)


def validate_secret(secret: object, rules: EndpointRules, field: str = "secret") -> str:
    """A signing secret: printable ASCII without spaces, long and varied enough to resist guessing."""
    if not isinstance(secret, str):
        raise ValidationError(field, "must be a string")
    if not rules.min_secret_length <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationError(
            field,
            f"must be {rules.min_secret_length} to {MAX_SECRET_LENGTH} characters long, got {len(secret)}",
        )
    if not all(0x21 <= ord(ch) <= 0x7E for ch in secret):
        raise ValidationError(field, "use printable ASCII characters without spaces")
    if len(set(secret)) < rules.min_distinct_secret_chars:
        raise ValidationError(
            field, f"too easy to guess: use at least {rules.min_distinct_secret_chars} different characters"
        )
    return secret


def validate_description(description: object) -> str:
    if not isinstance(description, str):
        raise ValidationError("description", "must be a string")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError("description", f"longer than {MAX_DESCRIPTION_LENGTH} characters")
    return description


def validate_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value
