"""``python -m bench.dashboard`` works at a tiny size: it builds the rows, signs in and measures
every page (it does not check the figures against the target: that is the benchmark's job)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_benchmark_measures_every_page_at_a_small_size() -> None:
    """Every page it names answers with rows, and a time is printed for each."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.dashboard", "--rows", "400", "--requests", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = re.findall(r"^(.+?)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", done.stdout, re.MULTILINE)
    pages = {name.strip(): int(rows) for name, _, _, rows in lines}
    assert len(pages) == 8, done.stdout
    assert pages["log, newest 50"] == 50
    assert pages["log, page 2"] == 50
    assert pages["log, status=failed"] == 20  # 5 % of 400
    assert pages["webhooks (24 h health)"] == 0  # it lists webhooks, not deliveries
