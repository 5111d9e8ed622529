"""The service's settings, and the click options that fill them (ADR 0008).

Each setting is one click option whose ``envvar`` is named after the flag: ``--some-name`` is
also ``ATTRIBUTION_WEBHOOKS_SOME_NAME``. click does the layering (the flag wins over the
variable, the variable over the default); this module says what each setting means, how its
text is read and which commands take it. A value that cannot be read fails in click's type
conversion with a message saying why; the CLI names the flag or the variable it came from.

``Settings`` is what the composition root takes (``bootstrap.open_runtime``); an embedder or a
test builds it directly, with no command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

import attrs
import click
from attrs import field, frozen

from ..adapters.crypto import Keyring, KeyringError
from ..adapters.http import EgressSettings
from ..adapters.http.settings import HttpClient
from ..adapters.sql import DEFAULT_URL
from ..core.errors import ValidationError
from ..core.retry import SPEC_DELAYS

__all__ = [
    "API",
    "DATABASE",
    "DELIVERY",
    "ENV_PREFIX",
    "Mode",
    "Settings",
    "SettingsError",
    "format_duration",
    "parse_duration",
    "setting_options",
]

ENV_PREFIX = "ATTRIBUTION_WEBHOOKS_"


class SettingsError(ValueError):
    """Settings that cannot work together; the message says which and why."""


class Mode(StrEnum):
    """``production``: https:// public targets only. ``development``: http:// and loopback too."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


@frozen
class Settings:
    """Everything the composition root needs to build the service."""

    database_url: str = DEFAULT_URL
    host: str = "127.0.0.1"
    port: int = 8080
    mode: Mode = Mode.PRODUCTION
    retry_delays: tuple[timedelta, ...] = SPEC_DELAYS
    request_timeout: timedelta = timedelta(seconds=15)
    concurrency: int = 64
    per_endpoint_concurrency: int = 8
    poll_interval: timedelta = timedelta(milliseconds=500)
    shutdown_grace: timedelta = timedelta(seconds=10)
    max_body_size: int = 1024 * 1024
    egress_proxy: str | None = None
    egress_source_address: str | None = None
    egress_allow_networks: tuple[str, ...] = ()
    egress_client: str = "curl"
    log_level: str = "info"
    log_format: str = "text"
    #: Processes of ``serve`` or ``worker``; None: the number of cores on PostgreSQL, 1 on SQLite
    #: (``app.supervisor.process_count``).
    workers: int | None = None
    session_secret: str | None = field(default=None, repr=False)  # a key: kept out of logs
    #: Master keys that encrypt webhook secrets at rest, newest first (ADR 0010). Never shown.
    secret_keys: str | None = field(default=None, repr=False)
    #: Finished history older than this is removed by the worker (ADR 0018); zero: kept forever.
    retention_age: timedelta = timedelta(days=30)
    #: ``on``: an OpenTelemetry span per publish and per attempt, ``traceparent`` sent (ADR 0012).
    tracing: str = "off"


# --- reading a setting's text -----------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> timedelta:
    """``250ms``, ``1.5s``, ``5m``, ``1h``; a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 500ms, 30s, 5m or 1h")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    """The shortest text ``parse_duration`` reads back as ``value``: ``1h``, ``5m``, ``15s``, ``500ms``."""
    milliseconds = round(value.total_seconds() * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def _positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError("must be more than zero")
    return value


def _retention_age(text: str) -> timedelta:
    """``30d``, ``12h`` and the other durations; ``0`` or ``forever`` (zero) keeps history forever."""
    value = text.strip().lower()
    if value in ("0", "forever"):
        return timedelta(0)
    days = re.fullmatch(r"(\d+(?:\.\d+)?)d", value)
    age = timedelta(days=float(days.group(1))) if days else parse_duration(value)
    if age <= timedelta(0):
        raise ValueError("must be more than zero, or 0 or forever to keep history forever")
    return age


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", text.strip()) if part]


def _delays(text: str) -> tuple[timedelta, ...]:
    """The retry schedule after the immediate first attempt, e.g. ``1m,5m,15m,1h`` (the spec's)."""
    return tuple(parse_duration(part) for part in _split(text))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _port(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port number (0 to 65535; 0 picks a free one)")
    return int(text)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"{text!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _secret_keys(text: str) -> str:
    try:
        Keyring.parse(text)
    except KeyringError as error:
        raise ValueError(str(error)) from None
    return text.strip()


def _egress(attribute: str, read: Callable[[str], Any] = _text) -> Callable[[str], Any]:
    """A value the HTTP adapter checks (``EgressSettings``): checked by it here already, so that
    the error names the flag or variable rather than the adapter's field."""

    def parse(text: str) -> Any:
        value = read(text)
        try:
            EgressSettings(**{attribute: value})
        except ValidationError as error:
            raise ValueError(error.reason) from None
        return value

    return parse


if TYPE_CHECKING:
    _ParamType = click.ParamType[Any]
else:  # click 8.4 made ParamType generic; the releases before cannot be subscripted
    _ParamType = click.ParamType


class _Reader(_ParamType):
    """A click type that reads text with one of the functions above; a ValueError is click's
    ``BadParameter``, whose message says why."""

    def __init__(self, name: str, read: Callable[[str], Any]) -> None:
        self.name = name
        self.read = read

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.read(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


# --- the options ----------------------------------------------------------------------------------


@frozen
class _Setting:
    read: Callable[[str], Any]
    metavar: str
    help: str


_SETTINGS: dict[str, _Setting] = {
    "database_url": _Setting(_text, "URL", "the database: sqlite:///file or postgresql://…"),
    "mode": _Setting(
        lambda text: Mode(_one_of("development", "production")(text)),
        "MODE",
        "production delivers to public https:// targets only; development allows http:// and local ones",
    ),
    "host": _Setting(_text, "HOST", "address the API listens on"),
    "port": _Setting(_port, "PORT", "port the API listens on (0 picks a free one)"),
    "max_body_size": _Setting(_positive_int, "BYTES", "largest request body (larger ones get 413)"),
    "retry_delays": _Setting(
        _delays, "LIST", "waits before each retry (the spec's by default; e.g. 1s,2s,5s for a demo)"
    ),
    "request_timeout": _Setting(_positive_duration, "DURATION", "time limit of one delivery"),
    "concurrency": _Setting(_positive_int, "N", "deliveries in flight per process"),
    "per_endpoint_concurrency": _Setting(_positive_int, "N", "deliveries in flight per endpoint"),
    "poll_interval": _Setting(
        _positive_duration, "DURATION", "how often a worker looks for work published by other processes"
    ),
    "shutdown_grace": _Setting(
        parse_duration, "DURATION", "on SIGTERM, how long deliveries in flight may take to finish"
    ),
    "egress_proxy": _Setting(_egress("proxy"), "URL", "send deliveries through this http:// proxy"),
    "egress_source_address": _Setting(
        _egress("source_address"), "IP", "send deliveries from this local IP address"
    ),
    "egress_allow_networks": _Setting(
        _egress("allow_networks", lambda text: tuple(_split(text))),
        "CIDRS",
        "internal networks production mode may deliver to nonetheless (comma-separated)",
    ),
    "egress_client": _Setting(
        _one_of(*HttpClient),
        "CLIENT",
        "the HTTP client that sends deliveries: curl (libcurl) or httpx",
    ),
    "workers": _Setting(
        _positive_int,
        "N",
        "processes, each delivering (and serving the API); default: the number of cores on "
        "PostgreSQL, 1 on SQLite (one writer)",
    ),
    "log_level": _Setting(_one_of("debug", "info", "warning", "error"), "LEVEL", "what to log"),
    "log_format": _Setting(_one_of("text", "json"), "FORMAT", "log lines as text, or as JSON objects"),
    "session_secret": _Setting(
        _text,
        "TEXT",
        "the key of dashboard sessions, the same for every serve process behind one address "
        "(default: generated on the first start, kept next to the SQLite database)",
    ),
    "retention_age": _Setting(
        _retention_age,
        "AGE",
        "finished events, deliveries and attempts older than this are removed (e.g. 30d, 12h; "
        "0 or forever keeps them)",
    ),
    "tracing": _Setting(
        _one_of("off", "on"),
        "SWITCH",
        "on: OpenTelemetry spans per publish and attempt, with a traceparent header to receivers "
        "(needs the otel extra; the process's tracer provider exports them)",
    ),
    "secret_keys": _Setting(
        _secret_keys,
        "KEYS",
        "master keys that encrypt webhook secrets, newest first, comma-separated; required to serve "
        "in production (give it in the environment rather than on the command line)",
    ),
}

#: The settings each kind of command takes: ``DATABASE`` every command that only reads or writes
#: the database; ``DELIVERY`` a process that delivers (``worker``); ``API`` one that also serves
#: the HTTP API (``serve``).
DATABASE = ("database_url", "secret_keys")
DELIVERY = (
    *DATABASE,
    "mode",
    "retry_delays",
    "request_timeout",
    "concurrency",
    "per_endpoint_concurrency",
    "poll_interval",
    "shutdown_grace",
    "egress_proxy",
    "egress_source_address",
    "egress_allow_networks",
    "egress_client",
    "log_level",
    "log_format",
    "retention_age",
    "tracing",
    "workers",
)
API = (*DATABASE, "host", "port", "max_body_size", *DELIVERY[len(DATABASE) :], "session_secret")


def _shown(value: Any) -> str | None:
    """A default as the text a user would type for it (None: no default to show)."""
    if value is None or value == ():
        return None
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple):
        return ",".join(_shown(item) or "" for item in value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _option(attribute: str) -> click.Option:
    setting = _SETTINGS[attribute]
    default = attrs.fields_dict(Settings)[attribute].default
    return click.Option(
        ["--" + attribute.replace("_", "-"), attribute],
        type=_Reader(attribute, setting.read),
        metavar=setting.metavar,
        help=setting.help,
        # The default goes through the same reader as a typed value, so --help shows it as one
        # would type it, and a test checks that it reads back as Settings' own default.
        default=_shown(default),
        show_default=True,
        envvar=ENV_PREFIX + attribute.upper(),
        show_envvar=True,
    )


def setting_options(*attributes: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """A decorator for a click command taking the settings ``attributes`` as options: the
    command is called with ``settings=Settings(...)`` (the rest at their defaults) instead."""

    def decorate(command: Callable[..., int]) -> Callable[..., int]:
        def with_settings(**params: Any) -> int:
            given = {name: params.pop(name) for name in attributes}
            return command(settings=_settings(given), **params)

        with_settings.__name__ = command.__name__
        with_settings.__doc__ = command.__doc__
        # click keeps the options given to a function in __click_params__, last one first: the
        # command's own options are listed first in --help, then the settings.
        options = [*(_option(a) for a in reversed(attributes)), *getattr(command, "__click_params__", [])]
        with_settings.__click_params__ = options  # type: ignore[attr-defined]  # click's own slot
        return with_settings

    return decorate


def _settings(given: Mapping[str, Any]) -> Settings:
    return Settings(**{name: value for name, value in given.items() if value is not None})
