"""One benchmark run: its sizes, the things it started, and what it measured so far.

``open_run`` starts the reference receiver (one process for the whole run, so that every
scenario and every reference talks to the same server) and finds PostgreSQL and Redis; each
scenario then starts and stops the rest itself. Closing the run stops everything and drops every
scratch database, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .clients import SECRET
from .databases import Postgres, SqliteFiles, postgres_problem
from .processes import LineProcess, Supervisor, python
from .receiver import ReceiverOptions, RunningReceiver, run_receiver

__all__ = ["FULL", "QUICK", "Run", "Sizes", "open_run"]


@dataclass(frozen=True)
class Sizes:
    """How big and how long each scenario is."""

    rounds: int
    concurrency: int  # requests in flight: our dispatcher's and every reference client's
    events: int  # scenario 1: the backlog each of our rounds delivers
    celery_events: int  # scenario 1: the tasks each Celery round delivers
    limit_seconds: float  # scenario 1: each reference client's measured time, after its warm-up
    limit_warmup: float
    latency_seconds: float  # scenario 2: publishing time at each load
    fanout_endpoints: int  # scenario 3
    fanout_events: int
    outage_rate: float  # scenario 4: events per second, each to both endpoints
    outage_healthy: float  # seconds before the outage, of the outage, and at most after it
    outage_down: float
    outage_tail: float
    retry_delays: str  # scenario 4: seconds, comma-separated
    scale_small: int  # scenario 5: pending deliveries
    scale_large: int
    scale_seconds: float  # scenario 5: how long the worker delivers from each queue
    ingest_seconds: float  # scenario 6: each server's measured time, after its warm-up
    ingest_warmup: float
    ingest_concurrency: int


FULL = Sizes(
    rounds=3,
    concurrency=64,
    events=10_000,
    celery_events=3_000,
    limit_seconds=5.0,
    limit_warmup=1.0,
    latency_seconds=5.0,
    fanout_endpoints=1_000,
    fanout_events=10,
    outage_rate=100.0,
    outage_healthy=4.0,
    outage_down=10.0,
    outage_tail=40.0,
    retry_delays="0.5,1,2,4,4,4,4,4,4,4",
    scale_small=10_000,
    scale_large=1_000_000,
    scale_seconds=2.0,
    ingest_seconds=5.0,
    ingest_warmup=1.0,
    ingest_concurrency=64,
)

QUICK = Sizes(
    rounds=1,
    concurrency=64,
    events=400,
    celery_events=200,
    limit_seconds=0.5,
    limit_warmup=0.2,
    latency_seconds=0.4,
    fanout_endpoints=1_000,
    fanout_events=1,
    outage_rate=50.0,
    outage_healthy=0.5,
    outage_down=1.0,
    outage_tail=10.0,
    retry_delays="0.2,0.4,0.4,0.4,0.4,0.4,0.4,0.4,0.4,0.4",
    scale_small=1_000,
    scale_large=10_000,
    scale_seconds=0.3,
    ingest_seconds=0.5,
    ingest_warmup=0.2,
    ingest_concurrency=16,
)


@dataclass
class Run:
    """The run's resources, settings and results; scenarios read and add to it."""

    sizes: Sizes
    quick: bool
    loop: str  # "uvloop" or "asyncio": our processes and the reference clients alike
    work: Path  # scratch files: SQLite databases, logs
    supervisor: Supervisor
    receiver: RunningReceiver
    sqlite: SqliteFiles
    postgres: Postgres | None
    redis_url: str | None
    skipped: dict[str, str] = field(default_factory=dict)  # what could not run, and why
    results: dict[str, Any] = field(default_factory=dict)
    verbose: bool = True

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    @property
    def base_url(self) -> str:
        """The receiver's root: scenarios give each endpoint a path of its own under it."""
        return f"http://{self.receiver.host}:{self.receiver.port}"

    def engine(
        self,
        name: str,
        db: str,
        *,
        per_endpoint: int = 8,
        retry_delays: str | None = None,
        pool_size: int = 4,
        poll_ms: float = 500,
    ) -> LineProcess:
        """Start our engine (``bench.engine``) on ``db`` and wait until it is ready."""
        argv = python("-m", "bench.engine", "--db", db, "--loop", self.loop)
        argv += ["--concurrency", str(self.sizes.concurrency), "--per-endpoint", str(per_endpoint)]
        argv += ["--pool-size", str(pool_size), "--poll-ms", str(poll_ms)]
        if retry_delays is not None:
            argv += ["--retry-delays", retry_delays]
        engine = LineProcess(self.supervisor, name, argv)
        try:
            engine.read(timeout=60)
        except BaseException:
            engine.close()
            raise
        return engine

    def needs_postgres(self) -> Postgres | None:
        if self.postgres is None:
            self.say(f"PostgreSQL skipped: {self.skipped.get('postgres')}")
        return self.postgres


def _redis_problem(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3) as conn:
            conn.sendall(b"PING\r\n")
            if not conn.recv(64).startswith(b"+PONG"):
                return "Redis did not answer PING"
    except OSError as error:
        return f"Redis unreachable at {url}: {error}"
    return None


def _missing(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return True
    return False


@contextlib.contextmanager
def open_run(
    sizes: Sizes,
    *,
    quick: bool,
    postgres_url: str | None,
    redis_url: str | None,
    loop: str = "uvloop",
    keep_work: bool = False,
    verbose: bool = True,
) -> Iterator[Run]:
    """Everything a run shares; stopped and removed on exit (the scratch folder is kept if the
    run failed, or with ``keep_work``, for its logs)."""
    skipped: dict[str, str] = {}
    if loop == "uvloop" and _missing("uvloop"):
        skipped["uvloop"] = "uvloop is not installed (pip install -e '.[bench]'): asyncio's loop is used"
        loop = "asyncio"
    problem = postgres_problem(postgres_url) if postgres_url else "not asked for (--no-postgres)"
    if problem:
        skipped["postgres"] = problem
    redis_problem = _redis_problem(redis_url) if redis_url else "not asked for (--no-celery)"
    if not redis_problem and (_missing("celery") or _missing("requests")):
        redis_problem = "celery or requests is not installed (pip install -e '.[bench]')"
    if redis_problem:
        skipped["celery"] = redis_problem
    work = Path(tempfile.mkdtemp(prefix="aw-bench-"))
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            supervisor = stack.enter_context(Supervisor(work / "logs"))
            options = ReceiverOptions(secret=SECRET, verify=True, uvloop=loop == "uvloop")
            receiver = stack.enter_context(run_receiver(options))
            postgres = None
            if not problem:
                assert postgres_url is not None
                postgres = stack.enter_context(Postgres(postgres_url))
            run = Run(
                sizes=sizes,
                quick=quick,
                loop=loop,
                work=work,
                supervisor=supervisor,
                receiver=receiver,
                sqlite=SqliteFiles(work / "db"),
                postgres=postgres,
                redis_url=None if redis_problem else redis_url,
                skipped=skipped,
                verbose=verbose,
            )
            yield run
            failed = False
    finally:
        if failed or keep_work:
            print(f"[bench] scratch files and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def environment() -> dict[str, Any]:
    """The machine and software a run measured."""
    import platform
    import sqlite3
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("aiohttp", "httpx", "sqlalchemy", "uvloop", "litestar", "uvicorn", "psycopg", "celery"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    versions["sqlite"] = sqlite3.sqlite_version
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "versions": versions,
    }
