"""The command line's options: which command takes which setting, every command described, the
README's configuration table exactly as the flags and variables, and flag > variable > default."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click
import pytest

from attribution_webhooks.adapters.http.settings import HttpClient
from attribution_webhooks.app.cli import cli
from attribution_webhooks.app.settings import (
    API,
    ENV_PREFIX,
    Mode,
    Settings,
    format_duration,
    parse_duration,
    setting_options,
)

README = Path(__file__).resolve().parents[2] / "README.md"

DATABASE_ONLY = {"--database-url", "--secret-keys"}  # every command that opens the database
DELIVERY = {
    *DATABASE_ONLY,
    "--mode",
    "--retry-delays",
    "--request-timeout",
    "--concurrency",
    "--per-endpoint-concurrency",
    "--poll-interval",
    "--shutdown-grace",
    "--egress-proxy",
    "--egress-source-address",
    "--egress-allow-networks",
    "--egress-client",
    "--log-level",
    "--log-format",
    "--retention-age",
    "--tracing",
    "--workers",
}


def commands(group: click.Group = cli, path: str = "") -> dict[str, click.Command]:
    """Every command and group under ``group`` by its path (``"db upgrade"``), the root as ``""``."""
    found: dict[str, click.Command] = {path: group}
    for name, command in group.commands.items():
        sub = f"{path} {name}".strip()
        if isinstance(command, click.Group):
            found.update(commands(command, sub))
        else:
            found[sub] = command
    return found


def flags(command: click.Command) -> set[str]:
    options = [param for param in command.params if isinstance(param, click.Option)]
    return {opt for option in options for opt in option.opts} - {"--help", "-h", "--version"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("serve", DELIVERY | {"--host", "--port", "--max-body-size", "--session-secret"}),
        ("worker", DELIVERY),
        ("db upgrade", DATABASE_ONLY),
        ("api-keys create", DATABASE_ONLY | {"--account", "--account-name", "--name"}),
        ("api-keys list", DATABASE_ONLY | {"--account"}),
        ("api-keys revoke", DATABASE_ONLY),
        ("webhooks list", DATABASE_ONLY | {"--account", "--json"}),
        ("events publish", DATABASE_ONLY | {"--type", "--data", "--id", "--file", "--json", "--account"}),
        ("verify", {"--secret", "--signature", "--payload"}),
        ("demo", {"--seed"}),
    ],
)
def test_each_command_offers_only_its_own_flags(path: str, expected: set[str]) -> None:
    """db upgrade takes the database's settings only, verify and demo no setting at all, serve and worker
    the delivery settings (and serve the API's)."""
    assert flags(commands()[path]) == expected


def test_every_command_and_group_has_a_one_line_description() -> None:
    """--help lists each command with a description that fits on its line, untruncated."""
    for path, command in commands().items():
        short = command.get_short_help_str(limit=64)
        assert short, f"{path or 'the root'} has no description"
        assert not short.endswith("..."), f"{path}: {short!r} is cut"
    for path, command in commands().items():
        if isinstance(command, click.Group):
            listing = command.get_help(click.Context(command, info_name=path or "attribution-webhooks"))
            assert "..." not in listing.split("Commands:")[1], listing


def test_the_readme_configuration_table_is_the_serve_command() -> None:
    """Every flag and variable of the README's table is a serve option with that variable, and
    every serve setting is in the table."""
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| (`--.*?) \| (`.*?) \|", section, flags=re.M):
        names = re.findall(r"`(--[a-z-]+)`", row[0])
        variables = re.findall(r"`(ATTRIBUTION_WEBHOOKS_[A-Z_]+|_[A-Z_]+)`", row[1])
        assert len(names) == len(variables), row
        documented.update(
            (name, var if var.startswith(ENV_PREFIX) else ENV_PREFIX + var[1:])
            for name, var in zip(names, variables, strict=True)
        )
    serve = commands()["serve"]
    offered = {
        param.opts[0]: param.envvar
        for param in serve.params
        if isinstance(param, click.Option) and param.envvar
    }
    assert offered == documented


def probe(*argv: str) -> Settings:
    """The settings a command taking every setting (serve's) receives for ``argv``."""
    received: list[Settings] = []

    @click.command()
    @setting_options(*API)
    def command(settings: Settings) -> int:
        received.append(settings)
        return 0

    assert command.main(list(argv), standalone_mode=False) == 0
    return received[0]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in os.environ:
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_defaults_are_the_settings_defaults(clean_environment: pytest.MonkeyPatch) -> None:
    """With no flag and no variable, a command gets Settings() exactly: the defaults shown in
    --help read back as the class's own."""
    assert probe() == Settings()


def test_flags_win_over_environment_over_defaults(clean_environment: pytest.MonkeyPatch) -> None:
    """A flag beats its variable, the variable beats the default; durations take units."""
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_PORT", "9000")
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_RETRY_DELAYS", "1s, 2s,500ms")
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_MODE", "Development")
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_EGRESS_ALLOW_NETWORKS", "10.20.0.0/16 192.168.1.0/24")
    settings = probe("--port", "9100", "--egress-client", "HTTPX")
    assert settings.port == 9100
    assert settings.mode is Mode.DEVELOPMENT
    assert [d.total_seconds() for d in settings.retry_delays] == [1.0, 2.0, 0.5]
    assert settings.egress_allow_networks == ("10.20.0.0/16", "192.168.1.0/24")
    assert HttpClient(settings.egress_client) is HttpClient.HTTPX
    assert settings.request_timeout == Settings().request_timeout
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_PORT", "")  # empty: as if unset
    assert probe().port == 8080


def test_a_bad_variable_fails_naming_the_variable(clean_environment: pytest.MonkeyPatch) -> None:
    """click's error for a bad value from the environment carries the variable's source."""
    clean_environment.setenv("ATTRIBUTION_WEBHOOKS_PORT", "99999")
    with pytest.raises(click.BadParameter) as raised:
        probe()
    assert "is not a port number" in raised.value.message
    ctx, param = raised.value.ctx, raised.value.param
    assert ctx is not None
    assert param is not None
    assert param.name == "port"
    assert ctx.get_parameter_source("port") is click.core.ParameterSource.ENVIRONMENT


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("15s", timedelta(seconds=15)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1.5s", timedelta(seconds=1.5)),
        ("2", timedelta(seconds=2)),
    ],
)
def test_durations_read_and_print_back(text: str, value: timedelta) -> None:
    """A duration reads with its unit and prints as the shortest text that reads back the same."""
    assert parse_duration(text) == value
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("0", timedelta(0)),
        ("forever", timedelta(0)),
        ("Forever", timedelta(0)),
    ],
)
def test_the_retention_age_reads_days_and_forever(
    clean_environment: pytest.MonkeyPatch, text: str, age: timedelta
) -> None:
    """--retention-age takes days as well as the other durations; 0 or forever keeps history."""
    assert probe("--retention-age", text).retention_age == age


def test_a_negative_retention_age_is_refused(clean_environment: pytest.MonkeyPatch) -> None:
    """A retention age that is not a duration fails in click, saying what it takes."""
    with pytest.raises(click.BadParameter, match="duration"):
        probe("--retention-age", "-1d")
