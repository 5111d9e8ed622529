"""The dashboard's fixtures: a real ``serve`` process, a receiver that can be stopped and started
again on the same port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import CHROMIUM, Receiver, Service, User, free_port
from litestar.testing import TestClient

from attribution_webhooks.adapters.crypto import generate_master_key
from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import Runtime, open_runtime
from attribution_webhooks.app.settings import Mode, Settings

__all__: list[str] = []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port())
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _cli(database: Path, *args: str) -> str:
    command = [sys.executable, "-m", "attribution_webhooks.app.cli", *args]
    result = subprocess.run(
        [*command, "--database-url", f"sqlite:///{database}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _drain(process: subprocess.Popen[str]) -> None:
    """Keep reading the service's output, so that it never blocks on a full pipe."""
    for _ in process.stdout or ():
        pass


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``serve --mode development`` with retries after 2 s and 4 s, and two accounts' keys."""
    directory = tmp_path_factory.mktemp("dashboard")
    database = directory / "service.sqlite3"
    command = [
        sys.executable, "-m", "attribution_webhooks.app.cli", "serve", "--mode", "development",
        "--port", "0", "--retry-delays", "2s,4s", "--poll-interval", "200ms",
        "--database-url", f"sqlite:///{database}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=directory,
    )
    try:
        assert process.stdout is not None
        output: list[str] = []
        url = key = None
        for line in process.stdout:
            output.append(line)
            if found := re.search(r"serving (http://\S+)", line):
                url = found.group(1)
            if found := re.search(r"X-API-Key: (\S+)", line):
                key = found.group(1)
                break
        assert url, "".join(output)
        assert key, "".join(output)
        threading.Thread(target=_drain, args=(process,), daemon=True).start()
        other = _cli(database, "api-keys", "create", "--account", "acct_other").strip().splitlines()[-1]
        yield Service(url, key, other, database)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright. Missing, it skips here and fails in CI (CI=true)."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $ATTRIBUTION_WEBHOOKS_SCREENSHOTS (e.g. docs/screenshots), else a
    temporary directory (they are taken either way, so the code that takes them is exercised)."""
    target = os.environ.get("ATTRIBUTION_WEBHOOKS_SCREENSHOTS")
    if not target:
        return tmp_path
    path = Path(target)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard-template") / "template.sqlite3"
    open_store(f"sqlite:///{path}", inline=True).close()
    return path


@pytest.fixture
def make_runtime(migrated_template: Path, tmp_path: Path) -> Iterator[Callable[[Mode], Runtime]]:
    """A runtime over a fresh copy of the migrated SQLite file, in the mode asked for."""
    opened: list[Runtime] = []

    def make(mode: Mode = Mode.DEVELOPMENT) -> Runtime:
        target = tmp_path / f"db-{len(opened)}.sqlite3"
        shutil.copyfile(migrated_template, target)
        keys = generate_master_key() if mode is Mode.PRODUCTION else None  # production requires one
        runtime = open_runtime(Settings(database_url=f"sqlite:///{target}", mode=mode, secret_keys=keys))
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        runtime.close()


@pytest.fixture
def users(make_runtime: Callable[[Mode], Runtime]) -> Iterator[tuple[User, User]]:
    """Alice and Bob, each with a key and a browser-like client of one development-mode service."""
    runtime = make_runtime(Mode.DEVELOPMENT)
    app = create_app(runtime, auth_ttl=0)  # keys re-checked on every request
    with TestClient(app) as alice_client, TestClient(app) as bob_client:
        yield User.create(runtime, alice_client, "acct_alice"), User.create(runtime, bob_client, "acct_bob")
