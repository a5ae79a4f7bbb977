"""Prometheus figure of the report turnaround (settings.RIS_METRICS_COLLECTORS)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from . import selectors
from .figures import Period


def report_tat(days: int = 7) -> list[tuple[str, float | None, float | None]]:
    """(priority or "all", median s, p90 s) of completed → final, procedures ordered in ``days``."""
    today = timezone.localdate()
    period = Period(first=today - timedelta(days=days - 1), last=today)
    step = selectors.STEP_BY_KEY["completed_to_final"]
    out = []
    for r in selectors.tat_table(period, dimensions=["priority"], steps=[step]):
        key = "all" if r["dimension"] == "all" else r["key"]
        out.append((key, r.get("completed_to_final_p50"), r.get("completed_to_final_p90")))
    return out


class ReportTATCollector:
    def collect(self):
        tat = GaugeMetricFamily(
            "ris_report_tat_seconds",
            "Report turnaround completed -> final, procedures ordered in the last 7 days",
            labels=["priority", "quantile"],
        )
        for priority, p50, p90 in report_tat():
            if p50 is not None:
                tat.add_metric([priority, "0.5"], p50)
            if p90 is not None:
                tat.add_metric([priority, "0.9"], p90)
        yield tat
