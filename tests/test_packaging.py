"""The package installs under one import name, as a wheel and editable (ADR 0001)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import attribution_webhooks
import attribution_webhooks.adapters
import attribution_webhooks.app
import attribution_webhooks.core

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_package_is_importable_under_its_own_name() -> None:
    """Tests import attribution_webhooks.*, the name another service would import."""
    assert attribution_webhooks.core.__name__ == "attribution_webhooks.core"
    assert Path(attribution_webhooks.core.__file__ or "").parent == ROOT / "src" / "core"


def test_no_top_level_core_or_app_package_leaks() -> None:
    """Installing us never shadows a `core` or `app` package of the embedding service."""
    for name in ("core", "app", "adapters", "testing"):
        found = subprocess.run(
            [sys.executable, "-c", f"import importlib.util as u; print(u.find_spec({name!r}))"],
            capture_output=True,
            text=True,
            cwd="/",
            check=True,
        )
        assert found.stdout.strip() == "None", f"top-level {name!r} importable: {found.stdout}"


def test_every_package_under_src_is_listed_in_pyproject() -> None:
    """setuptools gets an explicit list (the folders are renamed); a new package must be added."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(["attribution_webhooks", *init.parent.relative_to(ROOT / "src").parts])
        for init in (ROOT / "src").rglob("__init__.py")
        if "migrations" not in init.parts
    }
    assert found == listed


def test_the_wheel_holds_the_package_and_nothing_else(tmp_path: Path) -> None:
    """A built wheel contains attribution_webhooks/{core,adapters,app,testing}, migrations included."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("attribution_webhooks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {
        "attribution_webhooks",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    for module in (
        "app/worker/dispatcher.py",
        "adapters/sql/store.py",
        "adapters/http/transport.py",
        "app/cli.py",
    ):
        assert f"attribution_webhooks/{module}" in names
    assert any(name.startswith("attribution_webhooks/adapters/sql/migrations/versions/") for name in names)
    assert "attribution_webhooks/py.typed" in names


def test_the_service_runs_without_the_optional_extras(tmp_path: Path) -> None:
    """The README's run command installs no extras: serving on SQLite must not need psycopg (the
    "postgres" extra) nor anything of "bench"."""
    script = f"""
import sys
for name in ("psycopg", "psycopg_binary", "celery", "matplotlib", "requests"):
    sys.modules[name] = None  # importing it now fails, as on a machine without the extra
from attribution_webhooks.app import cli, runner
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.settings import Mode, Settings
runtime = open_runtime(Settings(database_url="sqlite:///{tmp_path}/x.sqlite3", mode=Mode.DEVELOPMENT))
assert runtime.wakeups() is None
runtime.close()
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
