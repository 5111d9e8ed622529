"""The bulk backlog of scenario 5 is what publishing would have written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.backlog import fill
from sqlalchemy import create_engine, text

from attribution_webhooks.adapters.sql import rebuild_read_models

_KEYS = {"deliveries": "delivery_id", "published_events": "event_id", "endpoints": "endpoint_id"}


def _read_models(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found: dict[str, Any] = {
                table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))]
                for table, key in _KEYS.items()
            }
            found["positions"] = tuple(
                conn.execute(text("SELECT count(*), min(position), max(position) FROM events")).one()
            )
    finally:
        engine.dispose()
    return found


def test_bulk_backlog_matches_a_rebuild_from_its_event_log(tmp_path: Path) -> None:
    """Replaying the copied event log reproduces every copied read-model row, positions are
    gapless, and every copied delivery is pending."""
    url = f"sqlite:///{tmp_path / 'backlog.sqlite3'}"
    made = fill(url, "http://127.0.0.1:9", deliveries=40, endpoints=4)
    assert made["deliveries"] == 40
    before = _read_models(url)
    assert rebuild_read_models(url) == 4 + 10 * 5  # 4 registrations; 10 events, each with 4 deliveries
    after = _read_models(url)
    assert after == before
    assert before["positions"] == (54, 1, 54)
    assert len(before["deliveries"]) == 40
    assert len(before["published_events"]) == 10
    engine = create_engine(url)
    with engine.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM deliveries WHERE queue_at IS NOT NULL")).scalar()
    engine.dispose()
    assert pending == 40
