"""The layers are enforced, not remembered: import-linter's contracts hold (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from django.conf import settings


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert ", 0 broken." in result.stdout, result.stdout[-4000:]


def test_make_test_runs_the_layer_and_type_checks():
    makefile = Path(settings.BASE_DIR, "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "lint-imports" in recipe and "mypy $(TYPED)" in recipe


def test_every_app_has_a_place_in_the_import_contracts():
    """A new app must be added to root_packages (and a layer), or the contracts skip it."""
    base = Path(settings.BASE_DIR)
    config = tomllib.loads((base / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    apps = {p.parent.name for p in base.glob("*/apps.py")}
    assert apps <= set(config["root_packages"]), sorted(apps - set(config["root_packages"]))
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    placed = {name.strip().strip("()") for line in layers for name in line.replace("|", ":").split(":")}
    assert apps <= placed, sorted(apps - placed)
