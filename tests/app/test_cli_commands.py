"""The command line, in process: each command's output, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql.migrate import head_revision
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.settings import Mode, Settings

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

    runtime = open_runtime(Settings(database_url=db, mode=Mode.DEVELOPMENT))
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
        (["serve", "--port", "http"], 2, "--port: 'http' is not a port number"),
        (["serve", "--retry-delays", "1x"], 2, "--retry-delays: '1x' is not a duration such as 500ms"),
        (["worker", "--concurrency", "0"], 2, "--concurrency: must be at least 1"),
        (["worker", "--egress-proxy", "https://proxy:3128"], 2, "--egress-proxy: give the proxy as http://"),
        (["worker", "--egress-source-address", "10.1"], 2, "--egress-source-address: '10.1' is not an IP"),
        (["worker", "--egress-allow-networks", "10.0.0.0/33"], 2, "--egress-allow-networks: '10.0.0.0/33'"),
        (["worker", "--egress-client", "requests"], 2, "--egress-client: 'requests': use curl or httpx"),
        (["serve", "--mode", "staging"], 2, "--mode: 'staging': use development or production"),
        (["verify", "--secret", "s", "--payload", "{}"], 2, "Missing option '--signature'"),
        (["api-keys", "revoke"], 2, "Missing argument 'KEY'"),
        (["demo", "--seed", "x"], 2, "--seed: 'x' is not a valid integer"),
        (["api-keys", "list", "--database-url", "mysql://x/y"], 1, "unsupported database"),
        (["api-keys", "list", "--database-url", "nonsense"], 1, "cannot open the database 'nonsense'"),
        (["no-such-command"], 2, "No such command 'no-such-command'"),
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


def test_a_flag_of_another_command_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """db upgrade takes --database-url only: a delivery setting there is an error, not ignored."""
    assert main(["db", "upgrade", "--retry-delays", "1s"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "No such option" in err
    assert "--retry-delays" in err


def test_a_bad_environment_variable_is_named(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting from the environment that does not parse names the variable, in the commands
    that take it; the others do not read it."""
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "staging")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "error: ATTRIBUTION_WEBHOOKS_MODE: 'staging': use development or production" in err
    assert main(["worker", "--mode", "development", "--concurrency", "0"]) == 2
    assert "--concurrency" in capsys.readouterr().err  # the flag won: MODE was not read
    assert main(["api-keys", "list"]) == 0
    assert capsys.readouterr().out == "no API keys\n"


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
