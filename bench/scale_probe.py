"""Where two PostgreSQL worker processes spend the machine: ``python -m bench.scale_probe [rounds]``.

Scale-out's own figures (``bench.scale``) say how fast one and two worker processes drain the same
backlog; this probe says why. Per round, for one worker process and then two, on a fresh copy of
the same backlog (10,000 deliveries to 16 endpoints, as ``bench.scale``):

- **cores used** by each group of processes while the backlog drains: the workers (their own CPU
  ÷ wall time), every PostgreSQL server process (backends, WAL writer, checkpointer…; sampled from
  ``/proc``, a lower bound) and the receiver, and their sum;
- **the append lock** (ADR 0004): the share of the drain during which some backend held it, and
  during which another waited for it, from ``pg_locks`` sampled every 5 ms. One process holding it
  a share ``u`` of the time bounds two processes at ``1 / u`` times one while appends serialise;
- **wait events**: the most frequent (wait, statement) pairs of active backends in
  ``pg_stat_activity``, sampled with the locks.

The sampling costs PostgreSQL some CPU of its own (one backend answering 200 queries a second):
``--no-sample`` measures cores without it. Results go to ``bench/results/scale_probe-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from attribution_webhooks.adapters.sql.statements import APPEND_LOCK

from .databases import DEFAULT_POSTGRES
from .harness import FULL, Run, open_run
from .processes import ROOT
from .scale import _cpu_s, _PostgresCpu
from .throughput import deliver_backlog

__all__ = ["main"]

_ENDPOINTS = 16


class _Sampler:
    """``pg_stat_activity`` and the append lock in ``pg_locks``, every 5 ms, on its own thread."""

    def __init__(self, admin_url: str, database: str) -> None:
        url = make_url(admin_url)
        self._conninfo = psycopg.conninfo.make_conninfo(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            dbname=url.database or "postgres",
        )
        self._database = database
        self.samples = 0
        self.held = 0  # samples in which a backend held the append lock
        self.waited = 0  # samples in which a backend waited for it
        self.waits: collections.Counter[tuple[str, str]] = collections.Counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scale-probe-sampler")

    def _run(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            while not self._done.wait(0.005):
                rows = conn.execute(
                    "SELECT coalesce(wait_event_type || ': ' || wait_event, 'CPU'), left(query, 60)"
                    " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                    " AND state = 'active' AND query NOT LIKE 'LISTEN%%'",
                    (self._database,),
                ).fetchall()
                held, waiting = conn.execute(
                    "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted)"
                    " FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                    (APPEND_LOCK, self._database),
                ).fetchone() or (0, 0)
                self.samples += 1
                self.held += held > 0
                self.waited += waiting > 0
                for wait, query in rows:
                    self.waits[(wait, query)] += 1

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def _round(run: Run, workers: int, r: int, count: int, sample: bool) -> dict[str, Any]:
    postgres = run.postgres
    assert postgres is not None
    url = postgres.copy("s5_probe_template", "s5_probe_round")
    database = make_url(url).database or ""
    try:
        receiver_pid = run.receiver.process.pid
        receiver = _cpu_s(receiver_pid)
        began = time.monotonic()
        sampler = _Sampler(postgres.admin_url, database)
        with _PostgresCpu() as server, sampler if sample else contextlib.nullcontext(sampler):
            result = deliver_backlog(run, f"s5-probe-pg{workers}-{r}", url, count, workers=workers)
        window = time.monotonic() - began
        receiver = _cpu_s(receiver_pid) - receiver
    finally:
        postgres.drop("s5_probe_round")
    drain = result["seconds"]
    worker_cores = sum(result["cpu_per_wall"])
    # The samplers cover the whole window (processes starting included); the lock is only taken
    # while the backlog drains, so its shares are of the drain.
    per_sample = window / sampler.samples if sampler.samples else 0.0
    return {
        "workers": workers,
        "deliveries_per_s": result["deliveries_per_s"],
        "drain_s": drain,
        "cores": {
            "workers": worker_cores,
            "postgres": server.seconds / drain,
            "receiver": receiver / drain,
            "total": worker_cores + (server.seconds + receiver) / drain,
        },
        "cpu_us_per_delivery": {
            "workers": 1e6 * worker_cores * drain / count,
            "postgres": 1e6 * server.seconds / count,
            "receiver": 1e6 * receiver / count,
        },
        "append_lock_held": sampler.held * per_sample / drain if sample else None,
        "append_lock_waited": sampler.waited * per_sample / drain if sample else None,
        "transactions": result["transactions"],
        "load": float(Path("/proc/loadavg").read_text().split()[0]),
        "waits": [[wait, query, n] for (wait, query), n in sampler.waits.most_common(12)],
    }


def _say(x: dict[str, Any]) -> str:
    cores = x["cores"]
    line = (
        f"{x['workers']} worker(s): {x['deliveries_per_s']:,.0f}/s; cores: workers {cores['workers']:.2f},"
        f" PostgreSQL {cores['postgres']:.2f}, receiver {cores['receiver']:.2f}, total {cores['total']:.2f};"
        f" load {x['load']:.1f}"
    )
    if x["append_lock_held"] is not None:
        line += f"; append lock held {x['append_lock_held']:.0%}, waited for {x['append_lock_waited']:.0%}"
    return line


@contextlib.contextmanager
def _backlog(run: Run, count: int) -> Iterator[None]:
    postgres = run.postgres
    assert postgres is not None
    template = postgres.fresh("s5_probe_template")
    try:
        engine = run.engine("s5-probe-publish", template)
        try:
            engine.call("register", urls=[f"{run.base_url}/s5probe/{n}" for n in range(_ENDPOINTS)])
            engine.call("publish", count=count // _ENDPOINTS, concurrency=16, timeout=1800)
        finally:
            engine.close()
        postgres.analyze("s5_probe_template")
        yield
    finally:
        postgres.drop("s5_probe_template")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_probe", description=__doc__.split("\n")[0])
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin URL for scratch databases")
    parser.add_argument("--no-sample", action="store_true", help="no pg_stat_activity / pg_locks sampling")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: list[dict[str, Any]] = []
    with open_run(FULL, quick=False, postgres_url=args.postgres, redis_url=None) as run:
        if run.postgres is None:
            parser.error(f"PostgreSQL is needed: {run.skipped.get('postgres')}")
        count = FULL.events // _ENDPOINTS * _ENDPOINTS
        with _backlog(run, count):
            for r in range(args.rounds):
                for workers in (1, 2):
                    results.append(_round(run, workers, r, count, sample=not args.no_sample))
                    print(f"round {r + 1}, {_say(results[-1])}", flush=True)
    out = ROOT / "bench" / "results" / f"scale_probe-{stamp}.json"
    out.write_text(json.dumps({"started": stamp, "rounds": results}, indent=1) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
