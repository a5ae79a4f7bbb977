"""Prometheus metrics of the web process: ``/metrics`` (internal only, like /health/ready).

django-prometheus counts requests, responses and latencies per view (its middlewares). The
RIS's own figures are read from PostgreSQL at scrape time, so every web process reports the
same truth and nothing is lost on restart:

* ``ris_ingest_queue_depth`` — received objects not yet indexed (``state=received``)
* ``ris_ingest_dead_objects`` — objects the ingest gave up on (``state=dead``)
* ``ris_outbox_depth{state}`` — outbox messages pending/dead (0 rows until the outbox ships)
* ``ris_report_tat_seconds{priority,quantile}`` — completed → final over the last 7 days

The DICOM node exports its own (associations, C-FIND/C-STORE counts and latencies) from its
process: ris/dicom_metrics.py. No label ever carries patient data.
"""

from __future__ import annotations

import logging
import os

import prometheus_client
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)


def _outbox_model():
    from django.apps import apps
    from django.db import connection

    for label in ("integration", "outbox"):
        try:
            model = apps.get_model(label, "OutboxMessage")
        except LookupError:
            continue
        if model._meta.db_table in connection.introspection.table_names():
            return model
    return None


class OutboxCollector:
    """Outbox depth, read through the app registry (the outbox app may not be installed yet)."""

    def collect(self):
        from django.db.models import Count

        outbox = GaugeMetricFamily("ris_outbox_depth", "Outbox messages not delivered", labels=["state"])
        try:
            model = _outbox_model()
            rows = (
                dict(model.objects.order_by().values_list("state").annotate(n=Count("id")))
                if model is not None
                else {}
            )
        except Exception:
            logger.warning("metrics: outbox unavailable", exc_info=True)
            rows = {}
        for state in ("pending", "dead"):
            outbox.add_metric([state], rows.get(state, 0))
        yield outbox


class _Guarded:
    """A collector whose failure yields no samples (logged), never a failed scrape."""

    def __init__(self, collector):
        self.collector = collector

    def collect(self):
        try:
            yield from list(self.collector.collect())
        except Exception:
            logger.warning("metrics: %s failed", type(self.collector).__name__, exc_info=True)


def _collectors():
    from django.conf import settings
    from django.utils.module_loading import import_string

    yield OutboxCollector()
    # Apps contribute their own figures by dotted path (ris imports no app).
    for path in getattr(settings, "RIS_METRICS_COLLECTORS", []):
        yield import_string(path)()


_ris_registry: prometheus_client.CollectorRegistry | None = None


def _registry() -> prometheus_client.CollectorRegistry:
    global _ris_registry
    if _ris_registry is None:
        registry = prometheus_client.CollectorRegistry(auto_describe=False)
        for collector in _collectors():
            registry.register(_Guarded(collector))
        _ris_registry = registry
    return _ris_registry


def exposition() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # gunicorn with several workers
        from prometheus_client import multiprocess

        base = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        base = prometheus_client.REGISTRY
    return prometheus_client.generate_latest(base) + prometheus_client.generate_latest(_registry())


@never_cache
def metrics_view(request):
    from .health import internal_request

    if not internal_request(request):
        raise Http404
    return HttpResponse(exposition(), content_type=prometheus_client.CONTENT_TYPE_LATEST)
