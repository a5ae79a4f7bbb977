"""Root pytest configuration: temp storage root; shared plugins for DICOM and Celery."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.dicom_support", "tests.celery_support"]


@pytest.fixture(autouse=True)
def _tmp_storage_root(settings, tmp_path):
    settings.RIS_STORAGE_ROOT = tmp_path / "storage"
    settings.RIS_STORAGE_ROOT.mkdir()
