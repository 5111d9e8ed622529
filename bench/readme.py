"""``python -m bench.readme bench/results/<stamp>.json``: README's performance table from a run.

The table between README's ``<!-- bench-table -->`` markers is regenerated from the ``## Targets``
table of the run's Markdown report (``report.markdown``) and links the committed result files,
so README's figures are always those of one committed run, never typed in by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .report import DASH, markdown

__all__ = ["table", "update"]

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def table(results: Path) -> str:
    """The lines to put between the markers for the run saved in ``results`` (its ``.json``)."""
    report = json.loads(results.read_text())
    lines = markdown(report).splitlines()
    try:
        start = lines.index("## Targets") + 2
    except ValueError:
        raise SystemExit(f"error: {results} has no targets table (not a `bench all` run?)") from None
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    machine = report["machine"]
    link = results.with_suffix(".md").relative_to(ROOT).as_posix()
    intro = (
        f"Run `{report['command']}` of {report['started']} ({machine['cpus']} vCPUs, shared;"
        f" {report['sizes']['rounds']} rounds, median (min{DASH}max)); every table and profile:"
        f" [`{link}`]({link})."
    )
    return "\n".join([intro, "", *lines[start:end]])


def update(readme: Path, results: Path) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"error: {readme} has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table(results)}\n{END}{tail}")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".json"):
        print("usage: python -m bench.readme bench/results/<stamp>.json", file=sys.stderr)
        return 2
    update(ROOT / "README.md", Path(argv[0]).resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
