"""Root pytest configuration: temp storage root, per-role users, API clients."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tmp_storage_root(settings, tmp_path):
    settings.RIS_STORAGE_ROOT = tmp_path / "storage"
    settings.RIS_STORAGE_ROOT.mkdir()


@pytest.fixture(autouse=True)
def _no_axes_lockout_leak(settings):
    # Each test starts with no remembered failures (axes stores them in the DB, rolled back).
    yield
