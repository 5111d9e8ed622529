"""``python -m bench``: the benchmark harness (issue 6).

    python -m bench all --quick           # every scenario at a tiny size, in under a minute
    python -m bench all                   # the full run: several rounds, minutes
    python -m bench throughput latency    # some scenarios only

It starts what it needs on 127.0.0.1 (the reference receiver, our engine's processes, a Celery
worker, scratch PostgreSQL databases), runs each scenario for a bounded time, stops everything it
started (on Ctrl-C or a failure too) and writes ``bench/results/<timestamp>.json`` with a
Markdown table beside it (and PNG plots when matplotlib is installed). Every headline figure is
a ratio to a reference measured in the same run, round by round: median, min-max.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .databases import DEFAULT_POSTGRES
from .harness import FULL, QUICK, environment, open_run
from .processes import ROOT, interrupt_on_sigterm

#: Scenario name → module (each has ``run(run) -> dict``), in the order ``all`` runs them.
SCENARIOS = {
    "throughput": "bench.throughput",
    "latency": "bench.latency",
    "fanout": "bench.fanout",
    "outage": "bench.outage",
    "scale": "bench.scale",
    "ingest": "bench.ingest",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scenarios: " + ", ".join(SCENARIOS) + ".",
    )
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="'all' or scenario names")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: under a minute")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where results go")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin URL for scratch databases")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL measurements")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="the Celery baseline's broker")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery baseline")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder (databases, logs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = list(SCENARIOS) if "all" in args.scenarios else args.scenarios
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        _parser().error(f"unknown scenario(s): {', '.join(unknown)}")
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        from dataclasses import replace

        sizes = replace(sizes, rounds=args.rounds)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "started": stamp,
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "sizes": vars(sizes),
        "machine": environment(),
        "scenarios": {},
    }
    began = time.monotonic()
    with (
        interrupt_on_sigterm(),
        open_run(
            sizes,
            quick=args.quick,
            postgres_url=None if args.no_postgres else args.postgres,
            redis_url=None if args.no_celery else args.redis,
            loop=args.loop,
            keep_work=args.keep_work,
            verbose=not args.quiet,
        ) as run,
    ):
        report["skipped"] = run.skipped
        if run.postgres is not None:
            report["machine"]["versions"]["postgresql"] = run.postgres.server_version()
        for name in names:
            started = time.monotonic()
            try:
                result = importlib.import_module(SCENARIOS[name]).run(run)
            except Exception as error:  # the other scenarios still run; the exit status says it
                run.say(f"scenario {name} failed:\n{traceback.format_exc()}")
                result = {"error": f"{type(error).__name__}: {error}"}
            result["elapsed_s"] = round(time.monotonic() - started, 1)
            report["scenarios"][name] = result
            run.results[name] = result
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    from .report import write

    for path in write(report, args.out, stamp):
        print(path)
    failed = [name for name, result in report["scenarios"].items() if "error" in result]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _main() -> int:
    try:
        return main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: everything started was stopped on the way out
        print(
            "[bench] interrupted; every process started was stopped, scratch databases dropped",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(_main())
