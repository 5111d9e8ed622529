"""The pieces of observability on their own: error classes, the metric families' counts, one
registry per runtime, the JSON log lines, readiness of the worker's loop and ``/readyz``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.observability import (
    ATTEMPTS_LOGGER,
    JsonFormatter,
    Metrics,
    Observability,
    configure_logging,
)
from attribution_webhooks.app.observability.metrics import error_class
from attribution_webhooks.app.settings import Mode, Settings
from attribution_webhooks.core.delivery import Delivery, DeliveryStatus
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    RetryScheduled,
)
from attribution_webhooks.core.outcomes import ErrorKind

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


def failed(status: int | None = None, error: ErrorKind | None = None, attempt: int = 1) -> AttemptFailed:
    return AttemptFailed("dlv_1", "wh_1", attempt, T0, 120.0, status, error, "detail", "")


def succeeded(attempt: int = 1) -> AttemptSucceeded:
    return AttemptSucceeded("dlv_1", "wh_1", attempt, T0, 30.0, 204, "OK")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (failed(500), "http_5xx"),
        (failed(503), "http_5xx"),
        (failed(404), "http_4xx"),
        (failed(429), "http_4xx"),
        (failed(302), "http_other"),
        (failed(None, ErrorKind.CONNECTION_REFUSED), "connection_refused"),
        (failed(None, ErrorKind.BLOCKED_TARGET), "blocked_target"),
        (failed(None, None), "error"),
    ],
)
def test_a_failed_attempt_has_a_bounded_error_class(event: AttemptFailed, expected: str) -> None:
    assert error_class(event) == expected


def test_recorded_events_count_attempts_deliveries_and_latency() -> None:
    metrics = Metrics()
    metrics.recorded([failed(500), RetryScheduled("dlv_1", 2, T0, T0)])
    metrics.recorded([failed(None, ErrorKind.READ_TIMEOUT, 2), DeliveryFailed("dlv_1", "wh_1", 2, T0)])
    metrics.recorded([succeeded()])
    metrics.recorded([DeliveryHeld("dlv_2", T0)])
    metrics.recorded([DeliveryCancelled("dlv_3", "endpoint deleted", T0)])
    got = samples(metrics)
    assert got[("webhooks_attempts_total", (("error_class", "http_5xx"), ("outcome", "failed")))] == 1
    assert got[("webhooks_attempts_total", (("error_class", "read_timeout"), ("outcome", "failed")))] == 1
    assert got[("webhooks_attempts_total", (("error_class", ""), ("outcome", "succeeded")))] == 1
    for outcome in ("succeeded", "failed", "held", "cancelled"):
        assert got[("webhooks_deliveries_total", (("outcome", outcome),))] == 1
    assert got[("webhooks_attempt_duration_seconds_count", (("outcome", "failed"),))] == 2
    assert got[("webhooks_attempt_duration_seconds_sum", (("outcome", "failed"),))] == pytest.approx(0.24)
    assert got[("webhooks_attempt_duration_seconds_bucket", (("le", "0.05"), ("outcome", "succeeded")))] == 1


def test_each_runtime_has_its_own_registry() -> None:
    """Two instances in one process neither collide (duplicate registration) nor share counts."""
    first, second = Metrics(), Metrics()
    first.recorded([succeeded()])
    key = ("webhooks_attempts_total", (("error_class", ""), ("outcome", "succeeded")))
    assert samples(first)[key] == 1
    assert key not in samples(second)


def test_a_scrape_reads_the_queue_and_says_when_it_cannot() -> None:
    observability = Observability()
    text = asyncio.run(observability.scrape(MemoryStore())).decode()
    assert "webhooks_queue_pending 0.0" in text
    assert "webhooks_database_up 1.0" in text
    assert "webhooks_worker_loop_age_seconds" not in text  # no dispatcher in this process

    class Broken(MemoryStore):
        async def queue_stats(self, now: datetime) -> Any:
            raise ConnectionError("down")

    observability.loop_ticked(datetime.now(UTC))
    text = asyncio.run(observability.scrape(Broken())).decode()
    assert "webhooks_database_up 0.0" in text
    assert "webhooks_worker_loop_age_seconds" in text


def test_worker_readiness_follows_the_loop() -> None:
    observability = Observability(poll_interval=timedelta(seconds=2))
    assert observability.stuck_after == timedelta(seconds=20)
    assert observability.worker_problem(T0) is None  # no worker in this process
    observability.worker_started = True
    assert observability.worker_problem(T0) == "the delivery worker has not started its loop yet"
    observability.loop_ticked(T0)
    assert observability.worker_problem(T0 + timedelta(seconds=20)) is None
    problem = observability.worker_problem(T0 + timedelta(seconds=21))
    assert problem == "the delivery worker's loop last went round 21 s ago (more than 20 s)"
    assert Observability(poll_interval=timedelta(milliseconds=100)).stuck_after == timedelta(seconds=10)


def test_a_json_line_holds_the_fields_given_and_the_exception() -> None:
    record = logging.LogRecord(
        "attribution_webhooks.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    record.delivery_id = "dlv_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "attribution_webhooks.x"
    assert line["message"] == "hello you"
    assert line["delivery_id"] == "dlv_1"
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_one_line_per_attempt_with_its_ids_outcome_and_latency(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging("info", log_format, stream)
    delivery = Delivery(DeliveryStatus.RETRYING, "dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed")
    observability = Observability()
    observability.recorded(delivery, [failed(500), RetryScheduled("dlv_1", 2, T0, T0)])
    observability.recorded(delivery, [succeeded(2)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    if log_format == "text":
        assert lines[0].endswith("attempt 1 of dlv_1 (event evt_1) to wh_1: failed, HTTP 500 in 120.0 ms")
        return
    first, second = map(json.loads, lines)
    common = {"logger": ATTEMPTS_LOGGER, "level": "info", "delivery_id": "dlv_1", "event_id": "evt_1"}
    assert (
        first.items()
        >= {
            **common,
            "endpoint_id": "wh_1",
            "attempt": 1,
            "outcome": "failed",
            "status_code": 500,
            "error_class": "http_5xx",
            "latency_ms": 120.0,
        }.items()
    )
    assert second.items() >= {**common, "attempt": 2, "outcome": "succeeded", "status_code": 204}.items()
    assert second["error_class"] is None


def test_readyz_reports_a_stuck_worker_and_healthz_does_not(tmp_path: Path) -> None:
    runtime = open_runtime(
        Settings(database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}", mode=Mode.DEVELOPMENT)
    )
    try:
        with TestClient(create_app(runtime)) as client:
            assert client.get("/readyz").json() == {"status": "ready"}  # no worker here
            runtime.observability.worker_started = True
            stuck = client.get("/readyz")
            assert stuck.status_code == 503
            assert stuck.headers["content-type"].startswith("application/problem+json")
            assert stuck.json()["detail"] == "the delivery worker has not started its loop yet"
            runtime.observability.loop_ticked(datetime.now(UTC) - timedelta(minutes=5))
            assert "last went round 300 s ago" in client.get("/readyz").json()["detail"]
            runtime.observability.loop_ticked(datetime.now(UTC))
            assert client.get("/readyz").status_code == 200
            assert client.get("/healthz").json() == {"status": "ok"}
    finally:
        runtime.close()


def test_the_readme_documents_every_metric_family() -> None:
    """The README's table lists exactly the families a runtime exposes (with a worker running)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Observability", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(webhooks_\w+)`", section, flags=re.M))
    observability = Observability()
    observability.loop_ticked(datetime.now(UTC))
    asyncio.run(observability.scrape(MemoryStore()))
    families = text_string_to_metric_families(observability.metrics.exposition().decode())
    # The parser names a counter without its _total suffix.
    exposed = {f"{f.name}_total" if f.type == "counter" else f.name for f in families}
    assert documented == exposed
