"""The layers are enforced, not remembered: import-linter's contracts hold (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
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
