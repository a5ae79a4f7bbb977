"""No noise: no kombu warning without a broker, a favicon instead of a 404, a useful banner."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as dj_settings
from django.urls import reverse


def test_eager_tasks_without_broker_do_not_warn():
    code = (
        "import django, logging; django.setup(); logging.basicConfig(level=logging.WARNING)\n"
        "from ris.celery import app\n"
        "@app.task(name='t.noop')\n"
        "def noop():\n    return 1\n"
        "assert app.conf.task_always_eager\n"
        "print(noop.apply_async().get())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "ris.settings"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=dj_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "1"
    assert "No hostname was supplied" not in out.stderr, out.stderr


@pytest.mark.django_db
def test_favicon_is_served(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp["Content-Type"] == "image/svg+xml"
    assert resp.content.startswith(b"<svg")
    assert reverse("favicon") == "/favicon.ico"


def test_startup_banner_names_api_docs_and_admin():
    from ris.management.commands.runsystem import startup_banner

    text = startup_banner(web="127.0.0.1:8000")
    assert "http://127.0.0.1:8000/api/docs/" in text
    assert "http://127.0.0.1:8000/admin/" in text
    assert "http://127.0.0.1:8000/api/schema/" in text
