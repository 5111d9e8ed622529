"""The command line, in process: each command's output, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql.migrate import head_revision
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.settings import Mode, Settings, SettingsError

DEAL = (
    '{"dealId": "d1", "amount": 5, "closedAt": "2024-01-20T15:00:00Z", "model": "linear", "attribution": []}'
)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite database named by the environment variable, in development mode."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_DATABASE_URL", url)
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "development")
    return url


def test_api_keys_create_list_and_revoke(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """create prints the key once; list shows only its prefix; revoke marks it revoked."""
    assert main(["api-keys", "create", "--account", "acct_a", "--name", "ci"]) == 0
    created = capsys.readouterr().out
    key = created.strip().splitlines()[-1]
    assert key.startswith("aw_")
    assert main(["api-keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert key not in listed
    prefix = f"aw_{key.split('_')[1]}_…"
    assert prefix in listed
    assert "active" in listed
    assert main(["api-keys", "revoke", prefix.rstrip("_…")]) == 0
    capsys.readouterr()
    main(["api-keys", "list", "--account", "acct_a"])
    assert "revoked" in capsys.readouterr().out
    assert main(["api-keys", "revoke", prefix.rstrip("_…")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_events_publish_and_webhooks_list(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """publish validates --data against the type's schema and schedules deliveries; list shows webhooks."""
    main(["api-keys", "create", "--account", "acct_a"])
    import asyncio

    from attribution_webhooks.app.bootstrap import open_runtime

    runtime = open_runtime(
        Settings.from_sources(
            None, {"ATTRIBUTION_WEBHOOKS_DATABASE_URL": db, "ATTRIBUTION_WEBHOOKS_MODE": "development"}
        )
    )
    try:
        asyncio.run(runtime.service.register_endpoint("acct_a", "http://127.0.0.1:9/h", ["deal.attributed"]))
    finally:
        runtime.close()
    capsys.readouterr()
    assert main(["events", "publish", "--type", "deal.attributed", "--data", DEAL, "--id", "evt_cli"]) == 0
    assert "published evt_cli to 1 webhook(s)" in capsys.readouterr().out
    assert main(["events", "publish", "--type", "deal.attributed", "--data", DEAL, "--id", "evt_cli"]) == 0
    assert "already published" in capsys.readouterr().out
    assert main(["webhooks", "list"]) == 0
    assert "http://127.0.0.1:9/h" in capsys.readouterr().out
    assert main(["webhooks", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["events"] == ["deal.attributed"]


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [
        (["events", "publish", "--type", "deal.nope", "--data", "{}"], 1, "unknown event type 'deal.nope'"),
        (["events", "publish", "--type", "deal.attributed", "--data", "{"], 2, "--data is not valid JSON"),
        (["events", "publish", "--type", "deal.attributed", "--data", '{"dealId": 1}'], 2, "data.dealId"),
        (["events", "publish", "--type", "deal.attributed", "--data", DEAL], 1, "no account yet"),
        (["serve", "--port", "http"], 2, "--port"),
        (["serve", "--retry-delays", "soon"], 2, "--retry-delays"),
        (["worker", "--concurrency", "0"], 2, "--concurrency: must be at least 1"),
        (["api-keys", "list", "--database-url", "mysql://x/y"], 1, "unsupported database"),
        (["no-such-command"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line_with_a_nonzero_status(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], status: int, fragment: str
) -> None:
    """Bad commands, data and settings print one line on stderr and exit non-zero."""
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("attribution-webhooks: error:")
    assert fragment in err


def test_a_bad_environment_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting from the environment that does not parse names the variable."""
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "staging")
    assert main(["api-keys", "list"]) == 2
    assert "ATTRIBUTION_WEBHOOKS_MODE" in capsys.readouterr().err


def test_verify_checks_a_payload_against_a_signature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify says valid for the raw body's HMAC, explains a re-serialised or newline-added body, and
    says invalid (exit 1) otherwise."""
    body = '{"id":"evt_1","type":"partner.created","data":{"name":"Åcme"}}'
    signature = HmacSigner().sign(body.encode(), "your_webhook_secret")
    assert (
        main(["verify", "--secret", "your_webhook_secret", "--signature", signature, "--payload", body]) == 0
    )
    assert capsys.readouterr().out.startswith("valid:")
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(body), indent=2), encoding="utf-8")
    assert (
        main(
            ["verify", "--secret", "your_webhook_secret", "--signature", signature, "--payload", f"@{pretty}"]
        )
        == 0
    )
    assert "re-serialised" in capsys.readouterr().out
    assert (
        main(["verify", "--secret", "wrong_secret_value", "--signature", signature, "--payload", body]) == 1
    )
    assert "invalid" in capsys.readouterr().err


def test_db_upgrade_reports_the_revision(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """db upgrade creates the schema and prints its revision."""
    assert main(["db", "upgrade"]) == 0
    assert f"database at revision {head_revision()}" in capsys.readouterr().out


def test_demo_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The virtual-time demo keeps working."""
    assert main(["demo"]) == 0
    assert "attempts" in capsys.readouterr().out


def test_flags_win_over_environment_over_defaults() -> None:
    """A flag beats its variable, the variable beats the default; durations take units."""
    import argparse

    env = {
        "ATTRIBUTION_WEBHOOKS_PORT": "9000",
        "ATTRIBUTION_WEBHOOKS_RETRY_DELAYS": "1s, 2s,500ms",
        "ATTRIBUTION_WEBHOOKS_MODE": "Development",
    }
    settings = Settings.from_sources(argparse.Namespace(port="9100"), env)
    assert settings.port == 9100
    assert settings.mode is Mode.DEVELOPMENT
    assert [d.total_seconds() for d in settings.retry_delays] == [1.0, 2.0, 0.5]
    assert Settings.from_sources(None, {}).port == 8080
    with pytest.raises(SettingsError, match="ATTRIBUTION_WEBHOOKS_PORT"):
        Settings.from_sources(None, {"ATTRIBUTION_WEBHOOKS_PORT": "99999"})


def test_the_delivery_client_can_be_switched_back_to_aiohttp(tmp_path: Path) -> None:
    """libcurl sends by default; ATTRIBUTION_WEBHOOKS_EGRESS_CLIENT=aiohttp is the fallback."""
    from attribution_webhooks.adapters.http.settings import HttpClient
    from attribution_webhooks.app.bootstrap import open_runtime

    database = f"sqlite:///{tmp_path / 'client.sqlite3'}"
    for env, expected in (
        ({}, HttpClient.CURL),
        ({"ATTRIBUTION_WEBHOOKS_EGRESS_CLIENT": "aiohttp"}, HttpClient.AIOHTTP),
    ):
        runtime = open_runtime(
            Settings.from_sources(None, {"ATTRIBUTION_WEBHOOKS_DATABASE_URL": database, **env})
        )
        try:
            assert runtime.egress.client is expected
        finally:
            runtime.close()
    with pytest.raises(SettingsError, match="EGRESS_CLIENT"):
        Settings.from_sources(None, {"ATTRIBUTION_WEBHOOKS_EGRESS_CLIENT": "requests"})
