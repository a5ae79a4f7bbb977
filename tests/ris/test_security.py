"""Login lockout, idle timeout, production settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def test_lockout_after_repeated_failures(client, users):
    user = users["front_desk"]
    user.set_password("Right-pass-1")
    user.save()
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        resp = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
        # The attempt that reaches the limit is the one that locks.
        assert resp.status_code == (429 if attempt == settings.AXES_FAILURE_LIMIT else 200)
    # Now even the right password is refused.
    resp = client.post("/accounts/login/", {"username": user.username, "password": "Right-pass-1"})
    assert resp.status_code == 429
    assert b"Too many failed login attempts" in resp.content
    assert "_auth_user_id" not in client.session


def test_api_token_endpoint_is_locked_out_too(client, users):
    user = users["reviewer"]
    user.set_password("Right-pass-2")
    user.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/api/v1/auth/token/", {"username": user.username, "password": "nope"})
    resp = client.post("/api/v1/auth/token/", {"username": user.username, "password": "Right-pass-2"})
    assert resp.status_code in (400, 403, 429)
    assert "token" not in resp.json()


def test_successful_login_redirects_home(client, users):
    users["front_desk"].set_password("Right-pass-3")
    users["front_desk"].save()
    resp = client.post("/accounts/login/", {"username": "u_front_desk", "password": "Right-pass-3"})
    assert resp.status_code == 302


def test_session_idle_timeout_is_sliding(client, users):
    client.force_login(users["front_desk"])
    client.get("/healthz")
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert 0 < settings.SESSION_COOKIE_AGE <= 60 * 60
    # An expired session is no longer a login.
    session = client.session
    session.set_expiry(-1)
    session.save()
    resp = client.get("/api/v1/auth/me/")
    assert resp.status_code in (401, 403)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x7!kq2-production-secret-" + "a9Z" * 20,
        "DJANGO_ALLOWED_HOSTS": "ris.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        "RIS_VAR_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout
