"""Root pytest configuration: temp storage root; shared plugins for DICOM and Celery."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.dicom_support", "tests.celery_support"]


@pytest.fixture(autouse=True)
def _tmp_storage_root(settings, tmp_path):
    settings.RIS_STORAGE_ROOT = tmp_path / "storage"
    settings.RIS_STORAGE_ROOT.mkdir()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
