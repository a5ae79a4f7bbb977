"""Load the settings in a fresh process with a given environment."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def run_settings(tmp_path, extra: str = "", **env_overrides) -> tuple[int, str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cfg.sqlite3'}",
        "RIS_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "ris.settings",
        **env_overrides,
    }
    code = "import django; django.setup()\n" + extra
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.returncode, out.stdout + out.stderr
