"""Liveness and readiness (issue 9 item 25): JSON, no patient data.

* ``/health/live`` — the process answers; no database, no authentication (for systemd,
  the load balancer, gunicorn's supervisor).
* ``/health/ready`` — every dependency this site configures: PostgreSQL, the broker (when
  ``CELERY_BROKER_URL`` is set), the storage root (writable, free space above
  ``RIS_HEALTH_MIN_FREE_MB``), the DICOM node (TCP connect to its port) and the HL7 listener
  (when ``RIS_HL7_PORT`` is set and ``runhl7`` exists; skipped otherwise). 200 when all pass,
  503 otherwise. **Internal only**: answered for requests from ``RIS_HEALTH_ALLOWED_NETS``
  (client address as the audit sees it, ris/net.py) or bearing
  ``Authorization: Bearer <RIS_HEALTH_TOKEN>``; anyone else gets 404 (nothing to discover).

A check reports ``ok``/``fail``/``skipped``, its duration and, on failure, the exception's
class name only (messages can carry DSNs or hostnames).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable

from django.conf import settings
from django.http import Http404, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

CheckResult = dict


class Skip(Exception):
    """The check does not apply to this site (not configured)."""


def check_database() -> dict:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return {}


def check_broker() -> dict:
    url = getattr(settings, "CELERY_BROKER_URL", None)
    if not url:
        raise Skip("no broker: tasks run eagerly")
    from kombu import Connection

    with Connection(url, connect_timeout=2, transport_options={"socket_timeout": 2}) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {}


def check_storage() -> dict:
    root = settings.RIS_STORAGE_ROOT
    if not os.path.isdir(root):
        raise RuntimeError("storage root missing")
    fd, path = tempfile.mkstemp(prefix=".health-", dir=root)
    try:
        os.write(fd, b"ok")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    free = shutil.disk_usage(root).free
    minimum = int(getattr(settings, "RIS_HEALTH_MIN_FREE_MB", 1024)) * 1024 * 1024
    detail = {"free_bytes": free, "min_free_bytes": minimum}
    if free < minimum:
        raise LowSpace(detail)
    return detail


class LowSpace(Exception):
    def __init__(self, detail: dict):
        super().__init__("free space below RIS_HEALTH_MIN_FREE_MB")
        self.detail = detail


def _connect(host: str, port: int) -> None:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1" if host != "::" else "::1"
    with socket.create_connection((host, int(port)), timeout=2):
        pass


def check_dicom() -> dict:
    # A TCP connect, not a C-ECHO: it takes no association slot and needs no AE policy entry
    # for the prober; the node's own receive deadlines drop the idle socket.
    host = getattr(settings, "RIS_HEALTH_DICOM_HOST", "") or settings.RIS_DICOM_BIND_ADDRESS
    _connect(host, settings.RIS_DICOM_PORT)
    return {"port": settings.RIS_DICOM_PORT}


def check_hl7() -> dict:
    port = getattr(settings, "RIS_HL7_PORT", None)
    if not port:
        raise Skip("RIS_HL7_PORT not set")
    from django.core.management import get_commands

    if "runhl7" not in get_commands():
        raise Skip("no HL7 listener in this release")
    host = getattr(settings, "RIS_HL7_BIND_ADDRESS", "") or "127.0.0.1"
    _connect(host, port)
    return {"port": int(port)}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
    "dicom": check_dicom,
    "hl7": check_hl7,
}


def run_checks(names=None) -> tuple[bool, dict]:
    skip = set(getattr(settings, "RIS_HEALTH_SKIP", []) or [])
    results: dict[str, CheckResult] = {}
    healthy = True
    for name, fn in CHECKS.items():
        if names is not None and name not in names:
            continue
        started = time.monotonic()
        if name in skip:
            results[name] = {"status": "skipped", "reason": "RIS_HEALTH_SKIP"}
            continue
        try:
            detail = fn() or {}
            result = {"status": "ok", **detail}
        except Skip as exc:
            result = {"status": "skipped", "reason": str(exc)}
        except LowSpace as exc:
            result = {"status": "fail", "error": "LowSpace", **exc.detail}
        except Exception as exc:
            result = {"status": "fail", "error": type(exc).__name__}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        healthy = healthy and result["status"] != "fail"
        results[name] = result
    return healthy, results


def internal_request(request) -> bool:
    """From an allowed network (the real client, X-Forwarded-For aware) or with the token."""
    token = getattr(settings, "RIS_HEALTH_TOKEN", "")
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if token and auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip(), token):
        return True
    from .net import client_ip

    addr = client_ip(request)
    try:
        ip = ipaddress.ip_address(addr or "")
    except ValueError:
        return False
    nets = getattr(settings, "RIS_HEALTH_ALLOWED_NETS", ["127.0.0.0/8", "::1/128"])
    return any(ip in ipaddress.ip_network(n, strict=False) for n in nets)


@never_cache
@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    if not internal_request(request):
        raise Http404
    healthy, results = run_checks()
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": results}, status=200 if healthy else 503
    )
