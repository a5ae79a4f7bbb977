"""Settings documented in .env.example are really read from the environment (issue 9 item 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from ris.config import DEV_SECRET_KEY, check_secret_key, parse_tat_targets
from ris.net import client_ip

GOOD_KEY = "x7!kq2-production-secret-" + "a9Z" * 20


def run_settings(tmp_path, **env_overrides):
    """Load the settings in a fresh process with this environment; (returncode, output)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cfg.sqlite3'}",
        "RIS_VAR_DIR": str(tmp_path),
        **env_overrides,
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'board': s.RIS_BOARD_POLL_SECONDS, 'xff': s.RIS_TRUST_X_FORWARDED_FOR, "
        "'tat': getattr(s, 'RIS_TAT_TARGETS', None)}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "ris.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.returncode, out.stdout + out.stderr


def test_settings_are_read_from_the_environment(tmp_path):
    rc, out = run_settings(
        tmp_path,
        RIS_BOARD_POLL_SECONDS="3",
        RIS_TRUST_X_FORWARDED_FOR="true",
        RIS_TAT_TARGETS="STAT=60,URGENT=240,ROUTINE=1440",
    )
    assert rc == 0, out
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {
        "board": 3,
        "xff": True,
        "tat": {
            "STAT": {"completed_to_final": 60},
            "HIGH": {"completed_to_final": 240},
            "ROUTINE": {"completed_to_final": 1440},
        },
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("STAT=abc", "'abc' for STAT is not a whole number of minutes"),
        ("FAST=60", "unknown priority 'FAST'"),
        ("STAT60", "is not PRIORITY=minutes"),
        ("STAT.order_to_lunch=5", "unknown step 'order_to_lunch'"),
        ("STAT=-5", "must be positive"),
    ],
)
def test_bad_tat_targets_stop_the_start_with_a_clear_message(tmp_path, value, message):
    with pytest.raises(ImproperlyConfigured, match="RIS_TAT_TARGETS"):
        parse_tat_targets(value)
    rc, out = run_settings(tmp_path, RIS_TAT_TARGETS=value)
    assert rc != 0
    assert "ImproperlyConfigured" in out and message in out, out


def test_tat_targets_per_step():
    assert parse_tat_targets(" stat.order_to_completed = 45 , STAT=30 ") == {
        "STAT": {"order_to_completed": 45, "completed_to_final": 30}
    }


def test_production_refuses_the_development_secret_key(tmp_path):
    rc, out = run_settings(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=DEV_SECRET_KEY)
    assert rc != 0 and "ImproperlyConfigured" in out and "DJANGO_SECRET_KEY" in out, out
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**env, "DJANGO_DEBUG": "false", "RIS_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "DJANGO_SECRET_KEY" in out.stderr
    rc, out = run_settings(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=GOOD_KEY)
    assert rc == 0, out
    for weak in ("", "change-me-to-50-random-characters", "short"):
        with pytest.raises(ImproperlyConfigured):
            check_secret_key(weak, debug=False)
    check_secret_key(DEV_SECRET_KEY, debug=True)  # development keeps working


@pytest.mark.parametrize(
    ("remote", "xff", "trust", "expected"),
    [
        ("127.0.0.1", "203.0.113.7", True, "203.0.113.7"),
        # A client-sent header is kept by nginx on the left: the right-most untrusted entry wins.
        ("127.0.0.1", "10.9.9.9, 203.0.113.7", True, "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, 127.0.0.1", True, "203.0.113.7"),
        # A request not from the trusted proxy: its header is not believed.
        ("198.51.100.2", "203.0.113.7", True, "198.51.100.2"),
        ("127.0.0.1", "not-an-ip", True, "127.0.0.1"),
        ("127.0.0.1", "", True, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", False, "127.0.0.1"),
        ("127.0.0.1", "[2001:db8::1]:4711", True, "2001:db8::1"),
    ],
)
def test_client_ip(settings, remote, xff, trust, expected):
    settings.RIS_TRUST_X_FORWARDED_FOR = trust
    settings.RIS_TRUSTED_PROXIES = ["127.0.0.1", "::1"]
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_audit_records_the_forwarded_client_address(settings, api_for):
    from audit.models import AuditEvent

    settings.RIS_TRUST_X_FORWARDED_FOR = True
    api = api_for("front_desk")
    api.get(
        "/api/v1/patients/",
        {"q": "x"},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.9",
    )
    ev = AuditEvent.objects.filter(action="patient.search").latest("id")
    assert ev.source_ip == "203.0.113.9"


def test_board_poll_reads_the_setting(settings):
    from scheduling.views import board_poll_seconds

    settings.RIS_BOARD_POLL_SECONDS = 4
    assert board_poll_seconds() == 4
