"""The sample deployment (deploy/) stays in step with the code (issue 9 item 26)."""

from __future__ import annotations

import configparser
import re
import runpy
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands

DEPLOY = Path(settings.BASE_DIR) / "deploy"
UNITS = ["ris-web", "ris-dicom", "ris-worker", "ris-beat", "ris-hl7"]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    text = (DEPLOY / "systemd" / f"{name}.service").read_text().replace("\\\n", " ")
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_units_restart_and_run_as_ris(name):
    u = unit(name)
    service = u["Service"]
    assert service["User"] == "ris" and service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/ris/ris.env"
    exec_start = service["ExecStart"]
    command = re.search(r"manage\.py (\w+)", exec_start)
    if command:
        wanted = command.group(1)
        assert wanted in get_commands() or wanted == "runhl7", wanted  # runhl7 lands separately
    else:
        assert "gunicorn ris.wsgi:application" in exec_start or "celery -A ris" in exec_start


def test_env_example_names_real_settings():
    names = [
        line.split("=", 1)[0]
        for line in (DEPLOY / "systemd" / "ris.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    source = (Path(settings.BASE_DIR) / "ris" / "settings.py").read_text()
    for name in names:
        if name == "PROMETHEUS_MULTIPROC_DIR":
            continue  # read by prometheus_client itself
        assert f'"{name}"' in source, name


def test_gunicorn_config_and_nginx_site():
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert callable(config["child_exit"]) and config["forwarded_allow_ips"] == "127.0.0.1"
    site = (DEPLOY / "nginx" / "ris.conf").read_text()
    assert "listen 443 ssl" in site and "ssl_certificate " in site
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in site
    assert "proxy_pass http://127.0.0.1:8000" in site
    assert re.search(r"location ~ \^/\(health/ready\|metrics\)\$ \{\s+allow 127\.0\.0\.1;", site)
