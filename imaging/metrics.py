"""Prometheus figures of the ingest, read at scrape time (settings.RIS_METRICS_COLLECTORS)."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .models import ObjectState, ReceivedObject


class IngestCollector:
    def collect(self):
        counts = dict(
            ReceivedObject.objects.filter(state__in=[ObjectState.RECEIVED, ObjectState.DEAD])
            .order_by()
            .values_list("state")
            .annotate(n=Count("id"))
        )
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
