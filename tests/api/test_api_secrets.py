"""Webhook secrets at rest, seen from the service: revealed while live, never stored in the
clear, and production refuses to start without the master key (ADR 0010)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from api_helpers import SECRET, Api
from sqlalchemy.engine import make_url

from attribution_webhooks.adapters.crypto import generate_master_key
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.runner import note_development_key
from attribution_webhooks.app.settings import Mode, Settings, SettingsError

production = pytest.mark.parametrize("apis", [Mode.PRODUCTION], indirect=True)


def database_file(api: Api) -> bytes:
    path = Path(str(make_url(api.runtime.store.engine.url).database))
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


@pytest.mark.parametrize("apis", [Mode.PRODUCTION, Mode.DEVELOPMENT], indirect=True)
def test_live_secrets_are_revealed_but_never_stored_in_the_clear(api: Api) -> None:
    """GET …/secret answers the live secret after create and rotate; the database file never holds it."""
    hook = api.register(url="https://1.1.1.1/hooks")  # an address literal: production resolves no name
    assert api.get(f"/webhooks/{hook['id']}/secret").json() == {"secret": SECRET}
    rotated = api.post(f"/webhooks/{hook['id']}/rotate-secret", {"gracePeriodSeconds": 60}).json()
    new_secret = rotated["secret"]
    assert api.get(f"/webhooks/{hook['id']}/secret").json() == {"secret": new_secret}
    assert api.get(f"/webhooks/{hook['id']}").json()["url"] == hook["url"]
    stored = database_file(api)
    assert b"sealed sk_" in stored  # the control: the file is the one the service writes
    assert SECRET.encode() not in stored
    assert new_secret.encode() not in stored


def test_production_refuses_to_start_without_the_master_key(tmp_path: Path) -> None:
    """One clear line naming the setting, before anything is opened."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'p.sqlite3'}", mode=Mode.PRODUCTION)
    with pytest.raises(SettingsError) as raised:
        open_runtime(settings)
    message = str(raised.value)
    assert "ATTRIBUTION_WEBHOOKS_SECRET_KEYS" in message
    assert "\n" not in message
    assert not (tmp_path / "p.sqlite3").exists()


def test_a_malformed_or_missing_master_key_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key that is not 32 bytes of base64 names the variable; a keyring without the key that
    wrapped the stored secrets names the missing key, and the service does not start."""
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_SECRET_KEYS", "not-a-key")
    argv = ["api-keys", "list", "--database-url", f"sqlite:///{tmp_path / 'm.sqlite3'}"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "ATTRIBUTION_WEBHOOKS_SECRET_KEYS: a secret key" in error
    assert error.count("\n") == 1
    database = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    runtime = open_runtime(Settings(database_url=database, secret_keys=generate_master_key()))
    try:
        asyncio.run(runtime.service.register_endpoint("acct_1", "https://1.1.1.1/h", ["deal.attributed"]))
    finally:
        runtime.close()
    with pytest.raises(SettingsError, match="not in the keyring") as raised:
        open_runtime(Settings(database_url=database, secret_keys=generate_master_key()))
    assert "\n" not in str(raised.value)


def test_development_without_a_key_keeps_one_in_the_database_loudly(tmp_path: Path) -> None:
    """Development mode makes its own key, kept in the database and the same on every start,
    and the service says so on every start; with a configured key it says nothing."""
    database = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    masters = set()
    for _ in range(2):
        runtime = open_runtime(Settings(database_url=database, mode=Mode.DEVELOPMENT))
        try:
            out = io.StringIO()
            note_development_key(runtime, out)
            assert out.getvalue().startswith("WARNING: ")
            assert "IN THE DATABASE" in out.getvalue()
            asyncio.run(
                runtime.service.register_endpoint("acct_1", "http://127.0.0.1:9/h", ["deal.attributed"])
            )
            with runtime.store.engine.connect() as conn:
                masters |= set(conn.exec_driver_sql("SELECT master_id FROM secret_keys").scalars())
        finally:
            runtime.close()
    assert len(masters) == 1
    runtime = open_runtime(Settings(database_url=database, secret_keys=generate_master_key()))
    try:
        out = io.StringIO()
        note_development_key(runtime, out)
        assert out.getvalue() == ""
        views = asyncio.run(runtime.store.list_endpoints("acct_1"))
        assert len(views) == 2
        for view in views:  # what the development key sealed still opens
            assert view.endpoint.secret.startswith("whsec_")
    finally:
        runtime.close()


def test_serve_refuses_production_without_a_key_but_database_commands_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve`` in production without the key is one line and exit 2; the database commands
    (which take no mode) use the key the database was set up with."""
    monkeypatch.delenv("ATTRIBUTION_WEBHOOKS_SECRET_KEYS", raising=False)
    database = ["--database-url", f"sqlite:///{tmp_path / 'c.sqlite3'}"]
    assert main(["serve", "--mode", "production", "--port", "0", *database]) == 2
    error = capsys.readouterr().err
    assert "production mode needs ATTRIBUTION_WEBHOOKS_SECRET_KEYS" in error
    assert error.count("\n") == 1
    assert main(["api-keys", "create", "--account", "acct_c", *database]) == 0
    assert main(["webhooks", "list", "--account", "acct_c", *database]) == 0
