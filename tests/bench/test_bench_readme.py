"""``python -m bench.readme``: README's performance table is the committed run's targets table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench.readme import END, ROOT, START, table, update


def _latest() -> Path:
    runs = sorted((ROOT / "bench" / "results").glob("*.json"))
    full = [run for run in runs if '"command": "python -m bench all"' in run.read_text()]
    assert full, "a full run's results are committed"
    return full[-1]


def test_readme_shows_the_latest_committed_full_run() -> None:
    """The table in README is what the newest committed `bench all` run regenerates, and links it."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == table(_latest()).strip()
    link = re.search(r"\(bench/results/(\S+)\.md\)", shown)
    assert link is not None
    assert (ROOT / "bench" / "results" / f"{link.group(1)}.md").exists()


def test_update_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START}\nold\n{END}\nafter\n")
    update(readme, _latest())
    text = readme.read_text()
    assert text.startswith("before\n")
    assert text.endswith("after\n")
    assert "old" not in text
    assert "| target" in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        update(readme, _latest())
