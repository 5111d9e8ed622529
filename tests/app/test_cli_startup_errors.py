"""A process that cannot start says why in one line on stderr and exits 1: a port already in use,
a database that cannot be opened, PostgreSQL not upgraded. Real processes, as a user runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_process import cli

from attribution_webhooks.adapters.crypto import generate_master_key
from attribution_webhooks.adapters.sql.migrate import head_revision
from attribution_webhooks.app.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))

from store_backends import fresh_postgres_database


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed start (exit status 1), without the program's prefix."""
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("attribution-webhooks: error: "), result.stderr
    return result.stderr.removeprefix("attribution-webhooks: error: ").rstrip("\n")


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_one_line_and_exit_1(occupied_port: int, tmp_path: Path) -> None:
    """serve on a port another process listens on: one line naming the address, no traceback."""
    result = run(
        "serve", "--mode", "development", "--port", str(occupied_port),
        "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )  # fmt: skip
    assert one_line_error(result) == f"cannot listen on 127.0.0.1:{occupied_port}: address already in use"
    assert result.stdout == ""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CANNOT_OPEN = [
    (
        "sqlite:///{tmp}/a-file/db.sqlite3",
        "cannot open the database sqlite:///{tmp}/a-file/db.sqlite3: unable to open database file",
    ),
    ("sqlite:///{tmp}", "cannot open the database sqlite:///{tmp}: unable to open database file"),
    ("not a url", "cannot open the database 'not a url': Could not parse SQLAlchemy URL"),
    ("mysql://localhost/db", "unsupported database 'mysql': use sqlite:/// or postgresql+psycopg://"),
    (
        "postgresql://u:secret@127.0.0.1:{closed}/db",
        "cannot open the database postgresql://u:***@127.0.0.1:{closed}/db: connection failed",
    ),
]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["api-keys", "list"], ["webhooks", "list"]])
@pytest.mark.parametrize(("url", "reason"), CANNOT_OPEN)
def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], url: str, reason: str
) -> None:
    """An unwritable SQLite path, a bad URL, an unknown database, an unreachable server: one line
    naming the database (never its password) and why, from every command that opens it."""
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    values = {"tmp": str(tmp_path), "closed": str(closed_port())}
    assert main([*command, "--database-url", url.format(**values)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("attribution-webhooks: error: " + reason.format(**values))
    assert "secret" not in err


def test_serve_on_an_unwritable_database_is_one_line(tmp_path: Path) -> None:
    """The same from a real serve process: no traceback, exit 1."""
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    url = f"sqlite:///{tmp_path}/a-file/db.sqlite3"
    result = run("serve", "--mode", "development", "--port", "0", "--database-url", url)
    assert one_line_error(result) == f"cannot open the database {url}: unable to open database file"


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_postgresql_not_upgraded_is_one_line(command: str) -> None:
    """A PostgreSQL database without the schema: one line that says to run db upgrade."""
    with fresh_postgres_database() as url:
        database = url.render_as_string(hide_password=False)
        # With the master key of webhook secrets, which production mode requires first (ADR 0010).
        result = run(command, "--database-url", database, "--secret-keys", generate_master_key())
        assert one_line_error(result) == (
            f"the database schema is at revision none, this version needs {head_revision()}: "
            "run `attribution-webhooks db upgrade` first"
        )


def test_postgresql_without_psycopg_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed without the postgres extra, a postgresql:// URL is one line naming the extra."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # importing it fails, as without the extra
    assert main(["db", "upgrade", "--database-url", f"postgresql://u@127.0.0.1:{closed_port()}/db"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "PostgreSQL needs psycopg: pip install 'attribution-webhooks[postgres]'" in err
