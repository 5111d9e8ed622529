"""API keys at the wall clock's edge, under freezegun: their timestamps, and how long a revoked
key is still remembered. The commands are driven through the CLI entry, as an operator runs them.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from freezegun import freeze_time

from attribution_webhooks.app.api.auth import Authenticator
from attribution_webhooks.app.api.problems import Unauthorized
from attribution_webhooks.app.bootstrap import Runtime, open_runtime
from attribution_webhooks.app.cli import main
from attribution_webhooks.app.runner import DEV_ACCOUNT, ensure_first_key
from attribution_webhooks.app.settings import Mode, Settings

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite database named by the environment variable, in development mode."""
    url = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_DATABASE_URL", url)
    monkeypatch.setenv("ATTRIBUTION_WEBHOOKS_MODE", "development")
    return url


def _runtime(db: str) -> Runtime:
    return open_runtime(Settings(database_url=db, mode=Mode.DEVELOPMENT))


def test_keys_are_stamped_with_the_wall_clock_when_created_and_revoked(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """api-keys create records the moment of creation, api-keys revoke the moment of revocation."""
    with freeze_time(T0):
        assert main(["api-keys", "create", "--account", "acct_a", "--name", "ci"]) == 0
    runtime = _runtime(db)
    try:
        (created,) = runtime.keys.keys("acct_a")
    finally:
        runtime.close()
    assert (created.created_at, created.revoked_at) == (T0, None)

    with freeze_time(T0 + timedelta(days=1, seconds=7)):
        assert main(["api-keys", "revoke", created.key_id]) == 0
    capsys.readouterr()
    runtime = _runtime(db)
    try:
        (revoked,) = runtime.keys.keys("acct_a")
    finally:
        runtime.close()
    assert (revoked.created_at, revoked.revoked_at) == (T0, T0 + timedelta(days=1, seconds=7))


def test_the_first_development_key_is_stamped_with_the_first_start(db: str) -> None:
    """On a development server's first start, its account and key are created at that moment."""
    runtime = _runtime(db)
    try:
        with freeze_time(T0):
            ensure_first_key(runtime, io.StringIO())
        (key,) = runtime.keys.keys(DEV_ACCOUNT)
        assert key.created_at == T0
    finally:
        runtime.close()


def test_a_revoked_key_is_refused_once_its_remembered_check_expires(db: str) -> None:
    """A key that checked out is remembered for the authenticator's ttl: after a revocation it
    still works until then, and is refused from then on."""
    runtime = _runtime(db)
    try:
        runtime.keys.create_account("acct_a", "a", T0)
        record, key = runtime.keys.create_key("acct_a", "ci", T0)
        authenticator = Authenticator(runtime.keys, ttl=10.0)
        connection: object = SimpleNamespace(headers={"x-api-key": key})

        def account() -> str:
            return asyncio.run(authenticator.account(connection))  # type: ignore[arg-type]

        with freeze_time(T0) as frozen:
            assert account() == "acct_a"
            assert runtime.keys.revoke(record.key_id, T0 + timedelta(seconds=1))
            frozen.tick(timedelta(seconds=9.5))
            assert account() == "acct_a"  # remembered: not asked again within the ttl
            frozen.tick(timedelta(seconds=1))
            with pytest.raises(Unauthorized):
                account()
    finally:
        runtime.close()
