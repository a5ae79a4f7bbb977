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


class RISCollector:
    """Gauges computed from the database when scraped (a failure yields no sample, not a 500)."""

    def collect(self):
        from django.db.models import Count

        from imaging.models import ObjectState, ReceivedObject

        try:
            counts = dict(
                ReceivedObject.objects.filter(state__in=[ObjectState.RECEIVED, ObjectState.DEAD])
                .order_by()
                .values_list("state")
                .annotate(n=Count("id"))
            )
        except Exception:
            logger.warning("metrics: ingest counts unavailable", exc_info=True)
        else:
            yield GaugeMetricFamily(
                "ris_ingest_queue_depth",
                "Received DICOM objects waiting to be indexed",
                value=counts.get(ObjectState.RECEIVED, 0),
            )
            yield GaugeMetricFamily(
                "ris_ingest_dead_objects",
                "Received objects the ingest gave up on",
                value=counts.get(ObjectState.DEAD, 0),
            )
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
        tat = GaugeMetricFamily(
            "ris_report_tat_seconds",
            "Report turnaround completed -> final, procedures ordered in the last 7 days",
            labels=["priority", "quantile"],
        )
        try:
            for priority, p50, p90 in report_tat():
                if p50 is not None:
                    tat.add_metric([priority, "0.5"], p50)
                if p90 is not None:
                    tat.add_metric([priority, "0.9"], p90)
        except Exception:
            logger.warning("metrics: report TAT unavailable", exc_info=True)
        yield tat


def report_tat(days: int = 7) -> list[tuple[str, float | None, float | None]]:
    from datetime import timedelta

    from django.utils import timezone

    from department import selectors
    from department.figures import Period

    today = timezone.localdate()
    period = Period(first=today - timedelta(days=days - 1), last=today)
    step = selectors.STEP_BY_KEY["completed_to_final"]
    out = []
    for r in selectors.tat_table(period, dimensions=["priority"], steps=[step]):
        key = "all" if r["dimension"] == "all" else r["key"]
        out.append((key, r.get("completed_to_final_p50"), r.get("completed_to_final_p90")))
    return out


_ris_registry = prometheus_client.CollectorRegistry(auto_describe=False)
_ris_registry.register(RISCollector())


def exposition() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # gunicorn with several workers
        from prometheus_client import multiprocess

        base = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        base = prometheus_client.REGISTRY
    return prometheus_client.generate_latest(base) + prometheus_client.generate_latest(_ris_registry)


@never_cache
def metrics_view(request):
    from .health import internal_request

    if not internal_request(request):
        raise Http404
    return HttpResponse(exposition(), content_type=prometheus_client.CONTENT_TYPE_LATEST)
