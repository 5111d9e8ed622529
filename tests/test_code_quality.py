"""The checks CI enforces, run as tests so the README's one test command covers them."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def _run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def test_ruff_lint() -> None:
    """ruff finds nothing in the code, the tests or the benchmarks."""
    _run(_tool("ruff"), "check", "src", "tests", "bench")


def test_ruff_format() -> None:
    """Everything is formatted as ruff formats it."""
    _run(_tool("ruff"), "format", "--check", "src", "tests", "bench")


def test_mypy_strict() -> None:
    """mypy --strict passes on src/ (the core, the adapters, the app)."""
    _run(_tool("mypy"))


def test_import_contracts() -> None:
    """The layers hold (testing → app → adapters → core), the core imports no I/O, concurrency,
    logging, clock or randomness, and the use cases and worker see only ports."""
    _run(_tool("lint-imports"))


_WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
}


def test_the_core_never_reads_the_clock_or_makes_randomness() -> None:
    """No datetime.now(), date.today(), uuid4() or random in src/core: they come through ports."""
    offences = []
    for path in sorted((ROOT / "src" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if (node.value.id, node.attr) in _WALL_CLOCK or node.attr.startswith("uuid"):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert offences == []


#: The two cattrs converters, one per contract (ADR 0011, "One converter per contract").
_CONVERTER_HOMES = {"src/adapters/payloads.py", "src/adapters/sql/codec.py"}


def test_cattrs_converters_are_built_only_in_their_two_homes() -> None:
    """The public JSON and the stored form each have one converter: no third one appears."""
    builders = {"Converter", "BaseConverter", "GenConverter", "make_converter"}
    found = set()
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if name in builders:
                    found.add(str(path.relative_to(ROOT)))
    assert found == _CONVERTER_HOMES


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "core/_contract_probe.py",
            "import sqlalchemy",
            "attribution_webhooks.core._contract_probe -> sqlalchemy",
        ),
        ("core/_contract_probe.py", "import asyncio", "attribution_webhooks.core._contract_probe -> asyncio"),
        ("core/_contract_probe.py", "import logging", "attribution_webhooks.core._contract_probe -> logging"),
        (
            "app/worker/_contract_probe.py",
            "from ...adapters import memory",
            "attribution_webhooks.app.worker._contract_probe -> attribution_webhooks.adapters.memory",
        ),
        (
            "app/_contract_probe.py",
            "from ..testing import fakes",
            "attribution_webhooks.app._contract_probe -> attribution_webhooks.testing.fakes",
        ),
    ],
)
def test_the_import_contracts_would_catch_a_violation(module: str, line: str, broken: str) -> None:
    """The contracts are not vacuous: the core importing sqlalchemy, asyncio or logging, the
    worker importing an adapter, or production code importing the test fakes breaks them."""
    probe = ROOT / "src" / module
    probe.write_text(f"{line}  # noqa: F401\n")
    try:
        result = subprocess.run(
            [_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
        )
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split())  # the report wraps long lines
