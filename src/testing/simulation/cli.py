"""The command line: run seeds, print violations, and replay one seed's whole story.

python -m attribution_webhooks.testing.simulation --seed 1234 --verbose
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ...core.events import time_of
from .runner import simulate
from .scenarios import offset

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run simulation seeds and check their invariants.")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--count", type=int, default=1, help="how many seeds from --seed")
    parser.add_argument("--verbose", action="store_true", help="print the scenario and its event log")
    args = parser.parse_args(argv)
    failed = 0
    for seed in range(args.seed, args.seed + args.count):
        result = simulate(seed)
        if args.verbose:
            print(result.scenario.describe())
            for recorded in result.log:
                print(f"  {recorded.position:5d} {offset(time_of(recorded.event))} {recorded.event}")
        status = "ok" if not result.violations else f"{len(result.violations)} violations"
        print(f"seed {seed}: {len(result.log)} events, {len(result.requests)} requests: {status}")
        for violation in result.violations:
            print(f"  - {violation}")
        failed += bool(result.violations)
    return 1 if failed else 0
