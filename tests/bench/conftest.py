"""The benchmark harness lives in ``bench/`` at the project's root, beside ``src/``: importable
from there (the tests folder must not hold a package named ``bench``, which would shadow it)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
