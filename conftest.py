"""Root pytest configuration: temp storage root; shared plugins for DICOM and Celery."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.dicom_support", "tests.celery_support"]


@pytest.fixture(autouse=True)
def _tmp_storage_root(settings, tmp_path):
    settings.RIS_STORAGE_ROOT = tmp_path / "storage"
    settings.RIS_STORAGE_ROOT.mkdir()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Property tests are deterministic in CI (the same examples every run): a random search that
# finds a new failure only some of the time is a flaky test. Explore locally with
# HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
