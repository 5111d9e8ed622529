"""The result file, its Markdown table and its plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write"]


def write(report: dict[str, Any], folder: Path, stamp: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp}.json"
    path.write_text(json.dumps(report, indent=1))
    return [path]
