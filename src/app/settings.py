"""The service's settings: from command-line flags and environment variables with the same names.

Every setting ``--some-name`` can also be given as ``ATTRIBUTION_WEBHOOKS_SOME_NAME``; a flag wins
over the variable, the variable over the default. A bad value is a ``SettingsError`` whose message
names the flag and the variable, so the CLI can print one line and exit.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any

from attrs import frozen

from ..adapters.sql import DEFAULT_URL
from ..core.retry import SPEC_DELAYS

__all__ = ["ENV_PREFIX", "OPTIONS", "Mode", "Option", "Settings", "SettingsError", "add_options"]

ENV_PREFIX = "ATTRIBUTION_WEBHOOKS_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message says which and why."""


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

    @classmethod
    def from_sources(
        cls, args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from parsed flags (``None`` where not given), then the environment, then defaults."""
        values: dict[str, Any] = {}
        environ = environ or {}
        for option in OPTIONS:
            raw = getattr(args, option.attribute, None) if args is not None else None
            source = option.flag
            if raw is None and option.env in environ and environ[option.env].strip():
                raw, source = environ[option.env].strip(), option.env
            if raw is None:
                continue
            try:
                values[option.attribute] = option.parse(raw)
            except (ValueError, TypeError) as error:
                raise SettingsError(f"{source}: {error}") from None
        return cls(**values)


# --- parsers ------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> timedelta:
    """``250ms``, ``1.5s``, ``5m``, ``1h``; a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 500ms, 30s, 5m or 1h")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError("must be more than zero")
    return value


def _delays(text: str) -> tuple[timedelta, ...]:
    """The retry schedule after the immediate first attempt, e.g. ``1m,5m,15m,1h`` (the spec's)."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    return tuple(parse_duration(part) for part in parts)


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


def _mode(text: str) -> Mode:
    try:
        return Mode(text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r}: use development or production") from None


def _level(text: str) -> str:
    level = text.strip().lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError(f"{text!r}: use debug, info, warning or error")
    return level


def _client(text: str) -> str:
    client = text.strip().lower()
    if client not in ("curl", "httpx"):
        raise ValueError(f"{text!r}: use curl (libcurl, the default) or httpx")
    return client


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _networks(text: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[,\s]+", text.strip()) if part)


# --- the options ----------------------------------------------------------------------------------


@frozen
class Option:
    """One setting: its flag, variable, parser and help, and which commands take it."""

    attribute: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    groups: frozenset[str]

    @property
    def flag(self) -> str:
        return "--" + self.attribute.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.attribute.upper()


def _option(attribute: str, parse: Callable[[str], Any], help: str, metavar: str, *groups: str) -> Option:
    return Option(attribute, parse, help, metavar, frozenset(groups))


# Groups: "db" every command that opens the database; "run" serve and worker; "http" serve only.
OPTIONS: tuple[Option, ...] = (
    _option("database_url", _text, f"the database (default {DEFAULT_URL}; or postgresql://…)", "URL", "db"),
    _option("mode", _mode, "development allows http:// and local targets (default production)", "MODE", "db"),
    _option("host", _text, "address the API listens on (default 127.0.0.1)", "HOST", "http"),
    _option("port", _port, "port the API listens on (default 8080)", "PORT", "http"),
    _option(
        "max_body_size", _positive_int, "largest request body in bytes (default 1048576)", "BYTES", "http"
    ),
    _option(
        "retry_delays",
        _delays,
        "waits before each retry (default the spec's 1m,5m,15m,1h; e.g. 1s,2s,5s for a demo)",
        "LIST",
        "db",
    ),
    _option(
        "request_timeout", _positive_duration, "time limit of one delivery (default 15s)", "DURATION", "run"
    ),
    _option("concurrency", _positive_int, "deliveries in flight per process (default 64)", "N", "run"),
    _option(
        "per_endpoint_concurrency", _positive_int, "deliveries in flight per endpoint (default 8)", "N", "run"
    ),
    _option(
        "poll_interval",
        _positive_duration,
        "how often a worker looks for work published by other processes (default 500ms)",
        "DURATION",
        "run",
    ),
    _option(
        "shutdown_grace",
        parse_duration,
        "on SIGTERM, how long deliveries in flight may take to finish (default 10s)",
        "DURATION",
        "run",
    ),
    _option("egress_proxy", _text, "send deliveries through this http:// proxy", "URL", "run"),
    _option("egress_source_address", _text, "send deliveries from this local IP address", "IP", "run"),
    _option(
        "egress_allow_networks",
        _networks,
        "internal networks production mode may deliver to nonetheless (CIDRs, comma-separated)",
        "CIDRS",
        "db",
    ),
    _option(
        "egress_client",
        _client,
        "the HTTP client that sends deliveries: curl (libcurl, default) or httpx",
        "CLIENT",
        "run",
    ),
    _option("log_level", _level, "debug, info, warning or error (default info)", "LEVEL", "run"),
)


def add_options(parser: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """Add the flags of the settings in ``groups`` to a (sub)command's parser."""
    wanted = set(groups)
    for option in OPTIONS:
        if option.groups & wanted:
            parser.add_argument(
                option.flag,
                dest=option.attribute,
                default=None,
                metavar=option.metavar,
                help=f"{option.help} [env {option.env}]",
            )
