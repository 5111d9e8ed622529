"""Instructions per delivery of the worker's drain, counted by valgrind's callgrind.

    python -m bench.instructions                 # 1,000 and 3,000 deliveries, one round
    python -m bench.instructions --rounds 3      # the same, three times

CPU time on a shared machine swings with the load; an instruction count does not, or much less:
the same code, inputs and loop batching give the same count. One worker process (the engine of
``bench.engine``: SQLite, one endpoint, 64 concurrent attempts) drains a backlog to the bench
receiver (in its own process, not counted); the backlog is published beforehand, outside
valgrind, and the count of a 1,000-delivery drain is taken from a 3,000-delivery one, so
start-up and imports cancel out: (I(3,000) - I(1,000)) / 2,000. The count still depends a
little on how many answers each turn of the loop finds ready, so a machine under heavy load
reads a few per cent higher: compare figures taken side by side (ADR 0007, the addendum of the
evening of 2 December 2026). Needs ``valgrind`` (Debian's package) on the PATH.

``--inner N prepare|drain DB`` is the engine side, run by the outer command.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .receiver import ReceiverOptions, run_receiver

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parent.parent


async def _inner(count: int, what: str, db: str, url: str, endpoints: int = 1) -> None:
    from .engine import _Engine

    args = argparse.Namespace(
        db=f"sqlite:///{db}",
        concurrency=64,
        per_endpoint=64,
        claim_batch=128,
        poll_ms=500,
        pool_size=4,
        retry_delays="60,300,900,3600",
    )
    engine = _Engine(args)
    try:
        if what == "prepare":
            if endpoints > 1:  # as scenario 1: each endpoint in an account of its own, taken in turn
                await engine.register([f"{url}/{n}" for n in range(endpoints)], spread=True)
            else:
                await engine.register([url])
            await engine.publish(count)
            return
        await engine.start()
        while engine.store.succeeded < count:
            await asyncio.sleep(0.002)
        await engine.stop()
    finally:
        engine.sql.close()


def _count(count: int, db: Path, url: str, endpoints: int) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", "bench.instructions", "--inner", str(count), "drain", str(db), "--url", url]
    argv += ["--endpoints", str(endpoints)]
    done = subprocess.run(argv, cwd=_ROOT, capture_output=True, text=True, check=True, timeout=1800)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def _prepare(count: int, db: Path, url: str, endpoints: int) -> None:
    argv = [sys.executable, "-m", "bench.instructions", "--inner", str(count), "prepare", str(db)]
    argv += ["--url", url, "--endpoints", str(endpoints)]
    subprocess.run(argv, cwd=_ROOT, check=True, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--small", type=int, default=1_000, help="deliveries of the short drain")
    parser.add_argument("--large", type=int, default=3_000, help="deliveries of the long drain")
    parser.add_argument("--inner", nargs=3, metavar=("COUNT", "WHAT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", type=int, default=1, help="endpoints, taken in turn (scenario 1: 16)")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        count, what, db = args.inner
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
            asyncio.run(_inner(int(count), what, db, args.url, args.endpoints))
        else:
            uvloop.run(_inner(int(count), what, db, args.url, args.endpoints))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with run_receiver(ReceiverOptions(uvloop=True)) as receiver, tempfile.TemporaryDirectory() as work:
        for round_ in range(1, args.rounds + 1):
            counts = {}
            for size in (args.small, args.large):
                db = Path(work) / f"r{round_}_{size}.sqlite3"
                _prepare(size, db, receiver.url, args.endpoints)
                started = time.monotonic()
                counts[size] = _count(size, db, receiver.url, args.endpoints)
                print(
                    f"round {round_}: {size:,} deliveries, {counts[size]:,} instructions"
                    f" ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                )
            per = (counts[args.large] - counts[args.small]) / (args.large - args.small)
            print(f"round {round_}: {per:,.0f} instructions per delivery")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
