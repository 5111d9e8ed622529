"""The dashboard's delivery log at scale: how long a page of 50 deliveries takes to render with a
million deliveries in SQLite (issue 11's target: under 100 ms).

    python -m bench.dashboard                    # 1,000,000 deliveries, 30 requests per page
    python -m bench.dashboard --rows 20000       # a quick look

Building a million deliveries through the use cases would take most of an hour on a small
machine, so the rows are written straight into the read-model tables with bulk SQL (``deliveries``
and ``attempts``, one attempt per delivery; the event log is left empty, which no page of the
log reads). Accounts, the key and the webhooks are made through the ordinary code. Each page is
then requested through the real application (routing, session, guard, use cases, Jinja), signed
in, in-process with Litestar's test client: the figure is the server's time, without a network.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import insert

from attribution_webhooks.adapters.sql.schema import attempts, deliveries
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.settings import Mode, Settings

ACCOUNT = "acct_bench"
WEBHOOKS = 5
CHUNK = 20_000
#: Per 100 deliveries: 90 succeeded (HTTP 200), 5 failed (HTTP 500), 3 retrying (refused), 2 new.
MIX = [("succeeded", 200, None)] * 90 + [("failed", 500, None)] * 5
MIX += [("retrying", None, "connection_refused")] * 3 + [("scheduled", None, None)] * 2

Rows = list[dict[str, Any]]


def _rows(start: int, stop: int, webhook_ids: list[str], t0: datetime) -> tuple[Rows, Rows]:
    """Deliveries ``start``..``stop`` (one every 50 ms of the past) and their attempts."""
    found: Rows = []
    tried: Rows = []
    for i in range(start, stop):
        status, code, error = MIX[i % 100]
        created = t0 + timedelta(milliseconds=i * 50)
        due = created + timedelta(minutes=1) if status in ("retrying", "scheduled") else None
        found.append(
            {
                "delivery_id": f"dlv_{i:026d}",
                "account_id": ACCOUNT,
                "endpoint_id": webhook_ids[i % len(webhook_ids)],
                "event_id": f"evt_{i:026d}",
                "event_type": "event.tracked" if i % 4 else "deal.attributed",
                "status": status,
                "test": False,
                "attempts": 0 if status == "scheduled" else 1,
                "due_at": due,
                "version": 3,
                "created_at": created,
                "updated_at": created,
                "last_attempt_at": None if status == "scheduled" else created,
                "last_status_code": code,
                "last_error": error,
                "queue_at": due,
                "lease": None,
            }
        )
        if status != "scheduled":
            tried.append(
                {
                    "position": i + 1,
                    "delivery_id": f"dlv_{i:026d}",
                    "attempt": 1,
                    "started_at": created,
                    "elapsed_ms": 12.0,
                    "succeeded": status == "succeeded",
                    "status_code": code,
                    "error": error,
                    "detail": "" if status == "succeeded" else "HTTP 500",
                    "response_body": "OK",
                }
            )
    return found, tried


def build(path: Path, rows: int) -> tuple[Any, TestClient[Any], str, list[str], float]:
    """The database: accounts, a key and webhooks through the code, then ``rows`` deliveries."""
    runtime = open_runtime(Settings(database_url=f"sqlite:///{path}", mode=Mode.DEVELOPMENT))
    now = datetime.now(UTC)
    runtime.keys.create_account(ACCOUNT, "bench", now)
    _, key = runtime.keys.create_key(ACCOUNT, "bench", now)
    client = TestClient(create_app(runtime))
    client.__enter__()
    headers = {"X-API-Key": key}
    webhook_ids = [
        client.post("/webhooks", json={"url": f"https://r{n}.example/h", "events": ["deal.attributed"]},
                    headers=headers).json()["id"]
        for n in range(WEBHOOKS)
    ]  # fmt: skip
    started = time.perf_counter()
    t0 = now - timedelta(milliseconds=rows * 50)
    with runtime.store.engine.begin() as conn:
        for start in range(0, rows, CHUNK):
            found, tried = _rows(start, min(rows, start + CHUNK), webhook_ids, t0)
            conn.execute(insert(deliveries), found)
            if tried:
                conn.execute(insert(attempts), tried)
    with runtime.store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return runtime, client, key, webhook_ids, time.perf_counter() - started


def sign_in(client: TestClient[Any], key: str) -> None:
    form = client.get("/dashboard/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    form_data = {"api_key": key, "csrf_token": token}
    answer = client.post("/dashboard/sign-in", data=form_data, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def measure(client: TestClient[Any], path: str, requests: int) -> dict[str, float]:
    client.get(path)  # warm: templates compiled, statement cache filled
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    rows = answer.text.count('href="/dashboard/deliveries/dlv_')
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    return {"median_ms": statistics.median(times), "p95_ms": p95, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="deliveries in the database")
    parser.add_argument("--requests", type=int, default=30, help="requests per page measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        runtime, client, key, webhook_ids, seconds = build(Path(directory) / "bench.sqlite3", args.rows)
        print(f"built {args.rows:,} deliveries (bulk SQL into the read models) in {seconds:.1f} s")
        sign_in(client, key)
        middle = datetime.now(UTC) - timedelta(milliseconds=args.rows * 25)
        since, until = (f"{t:%Y-%m-%dT%H:%M}" for t in (middle, middle + timedelta(hours=1)))
        pages = {
            "log, newest 50": "/dashboard/deliveries",
            "log, page 2": f"/dashboard/deliveries?cursor=dlv_{args.rows - 50:026d}",
            "log, one webhook": f"/dashboard/deliveries?webhook={webhook_ids[0]}",
            "log, status=failed": "/dashboard/deliveries?status=failed",
            "log, type=deal.attributed": "/dashboard/deliveries?type=deal.attributed",
            "log, 1 h time range": f"/dashboard/deliveries?from={since}&until={until}",
            "failures": "/dashboard/failures",
            "webhooks (24 h health)": "/dashboard/webhooks",
        }
        print(f"{'page':<28} {'median ms':>10} {'p95 ms':>8} {'rows':>5}")
        for name, path in pages.items():
            figures = measure(client, path, args.requests)
            print(f"{name:<28} {figures['median_ms']:>10.1f} {figures['p95_ms']:>8.1f} {figures['rows']:>5}")
        client.__exit__(None, None, None)
        runtime.close()


if __name__ == "__main__":
    main()
