"""The SQL store (SQLAlchemy Core): an event log with read models and a delivery queue, on an
embedded SQLite file by default or on PostgreSQL for several workers. See ADR 0004."""

from .engine import DEFAULT_URL, create_engine
from .keys import ApiKey, ApiKeyStore  # also registers its tables on the shared metadata
from .migrate import SchemaNotCurrent, check_schema, ensure_schema, upgrade
from .opening import open_store, rebuild_read_models
from .store import SqlStore

__all__ = [
    "DEFAULT_URL",
    "ApiKey",
    "ApiKeyStore",
    "SchemaNotCurrent",
    "SqlStore",
    "check_schema",
    "create_engine",
    "ensure_schema",
    "open_store",
    "rebuild_read_models",
    "upgrade",
]
