"""Aware UTC datetimes to and from the values the DBAPI drivers bind and return, for the hot paths
that bypass SQLAlchemy's type processing (``statements.py``). The cold paths keep ``UtcDateTime``.

SQLite stores UTC text in SQLAlchemy's own fixed format (``2024-01-20 15:00:00.000000``), so rows
written by either path read back through the other, and text order stays time order. Parsing it
with ``datetime.fromisoformat`` (C code) costs about as much as converting an integer of
microseconds would, so the schema keeps its text column (ADR 0004). PostgreSQL binds and returns
``timestamptz`` as aware datetimes in the session's zone; they only need moving to UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from .codec import remember_last, require_aware

__all__ = ["TimeColumns", "postgres_times", "sqlite_times"]


@remember_last
def _to_sqlite(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else require_aware(value)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - twice as fast as strftime
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )


def _from_sqlite(value: Any) -> datetime:
    # The suffix makes the result aware, in ``datetime.UTC`` itself, without a ``replace`` call.
    return datetime.fromisoformat(value + "+00:00")


def _to_postgres(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else require_aware(value)


def _from_postgres(value: Any) -> datetime:
    assert isinstance(value, datetime)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


@frozen
class TimeColumns:
    """``to_db``: an aware datetime as the driver binds it (a naive one is refused with
    ValueError); ``from_db``: a non-NULL column value as an aware UTC datetime."""

    to_db: Callable[[datetime], Any]
    from_db: Callable[[Any], datetime]


sqlite_times = TimeColumns(_to_sqlite, _from_sqlite)
postgres_times = TimeColumns(_to_postgres, _from_postgres)
