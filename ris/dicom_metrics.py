"""Prometheus metrics of the DICOM node process (issue 9 item 25).

A service module (``settings.RIS_DICOM_SERVICES``): ``contribute(ae)`` binds notification
handlers for association counts (EVT_ESTABLISHED/RELEASED/ABORTED; never EVT_DIMSE_SENT,
which would switch off the transport's C-STORE response fast path) and, when
``RIS_DICOM_METRICS_PORT`` is set, serves ``/metrics`` from this process on
``RIS_DICOM_METRICS_BIND`` (default 127.0.0.1). Handlers are timed by wrapping them where
they are registered: ``(evt.EVT_C_STORE, instrument("C-STORE", handle_store))``.

Metrics: ``ris_dicom_associations_total{outcome}``, ``ris_dicom_associations_active``,
``ris_dicom_requests_total{service,outcome}``, ``ris_dicom_request_seconds{service}``.
Labels carry only service names and outcome classes: no AE titles, no patient data.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time

from prometheus_client import Counter, Gauge, Histogram
from pynetdicom import evt

logger = logging.getLogger(__name__)

ASSOCIATIONS = Counter("ris_dicom_associations", "DICOM associations by how they ended", ["outcome"])
ACTIVE = Gauge("ris_dicom_associations_active", "DICOM associations currently established")
REQUESTS = Counter("ris_dicom_requests", "DIMSE requests handled", ["service", "outcome"])
LATENCY = Histogram(
    "ris_dicom_request_seconds",
    "Time to handle a DIMSE request (C-FIND: until the last response)",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_exporter_lock = threading.Lock()
_exporters: dict[tuple[str, int], object] = {}


def _outcome(status) -> str:
    """Success/warning/failure class of a DIMSE status (int, Dataset with Status, or (status, ds))."""
    if isinstance(status, tuple) and status:
        status = status[0]
    value = getattr(status, "Status", status)
    try:
        code = int(value)
    except (TypeError, ValueError):
        return "success"
    if code == 0x0000:
        return "success"
    if code in (0xFF00, 0xFF01):
        return "pending"
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return "warning"
    return "failure"


def instrument(service: str, handler):
    """Count and time ``handler`` (plain or generator, as pynetdicom's handlers are)."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(event, *args):
            started, outcome = time.monotonic(), "success"
            try:
                for item in handler(event, *args):
                    result = _outcome(item)
                    if result not in ("pending", "success"):
                        outcome = result
                    yield item
            except BaseException:
                outcome = "error"
                raise
            finally:
                REQUESTS.labels(service, outcome).inc()
                LATENCY.labels(service).observe(time.monotonic() - started)

        return generator

    @functools.wraps(handler)
    def plain(event, *args):
        started, outcome = time.monotonic(), "error"
        try:
            result = handler(event, *args)
            outcome = _outcome(result)
            return result
        finally:
            REQUESTS.labels(service, outcome).inc()
            LATENCY.labels(service).observe(time.monotonic() - started)

    return plain


def _established(event):
    ACTIVE.inc()


def _ended(outcome: str):
    def handler(event):
        ACTIVE.dec()
        ASSOCIATIONS.labels(outcome).inc()

    handler.__name__ = f"metrics_association_{outcome}"
    return handler


_released, _aborted = _ended("released"), _ended("aborted")


def _rejected(event):
    ASSOCIATIONS.labels("rejected").inc()


def start_exporter(port: int | None = None) -> int | None:
    """Serve /metrics from this process when RIS_DICOM_METRICS_PORT is set; the bound port."""
    from django.conf import settings

    port = int(port if port is not None else getattr(settings, "RIS_DICOM_METRICS_PORT", 0) or 0)
    if not port:
        return None
    addr = getattr(settings, "RIS_DICOM_METRICS_BIND", "127.0.0.1")
    with _exporter_lock:
        if (addr, port) not in _exporters:
            from prometheus_client import start_http_server

            server, _thread = start_http_server(port, addr=addr)
            _exporters[(addr, port)] = server
            logger.info("DICOM node metrics on http://%s:%s/metrics", addr, port)
    return port


def stop_exporters() -> None:
    with _exporter_lock:
        for server in _exporters.values():
            server.shutdown()
            server.server_close()
        _exporters.clear()


def contribute(ae) -> list:
    start_exporter()
    return [
        (evt.EVT_ESTABLISHED, _established),
        (evt.EVT_RELEASED, _released),
        (evt.EVT_ABORTED, _aborted),
        (evt.EVT_REJECTED, _rejected),
    ]
