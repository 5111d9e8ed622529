"""Schema migrations with Alembic, whose environment and revisions ship inside this package.

SQLite upgrades itself when a store opens (``ensure_schema``); PostgreSQL is upgraded by an
explicit command (``upgrade``, behind the CLI's ``db upgrade``), and a store refuses to open on
an out-of-date schema. An upgrade holds the database's write lock for its whole run (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock, with transactional DDL), so two processes
starting at once do not both migrate: the second waits, then finds nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from ..crypto import Keyring
from .engine import create_engine, write_options
from .schema import metadata

__all__ = [
    "MIGRATIONS",
    "SchemaNotCurrent",
    "alembic_config",
    "check_schema",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"

_MIGRATION_LOCK = 0x61775F6D  # "aw_m"


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not at the revision this code needs."""


def alembic_config(connection: Connection | None = None, keyring: Keyring | None = None) -> Config:
    """Alembic's configuration, with no ini file: the script location is this package's.
    ``keyring`` seals secrets that earlier releases stored in plaintext (revision 0003)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    config.attributes["secret_keyring"] = keyring
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine, keyring: Keyring | None = None) -> None:
    """Create the schema, or upgrade it to the latest revision; nothing to do is cheap.
    Without ``keyring``, secrets stored in plaintext are sealed with the development key."""
    if current_revision(engine) == head_revision():
        return
    with engine.connect() as conn:
        conn.execution_options(**write_options())
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            command.upgrade(alembic_config(conn, keyring), "head")


def check_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the latest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"the database schema is at revision {current or 'none'}, this version needs {head}: "
            "run `attribution-webhooks db upgrade` first"
        )


def upgrade(url: str | URL, keyring: Keyring | None = None) -> str:
    """Upgrade the database at ``url`` to the latest revision and return it (the CLI's ``db upgrade``)."""
    engine = create_engine(url, pool_size=1)
    try:
        ensure_schema(engine, keyring)
        return head_revision()
    finally:
        engine.dispose()
