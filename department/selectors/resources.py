"""Equipment status and downtime, materials consumption and low stock."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from scheduling.models import (
    ScheduledProcedureStep,
    Station,
    StationDowntime,
)

from ..figures import Figure, Period
from ..models import MaterialItem, MaterialUsage

# ---------------------------------------------------------------------------------------
# Equipment and materials


def station_status_list(*, now=None) -> list[dict]:
    now = now or timezone.now()
    today_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    down_now = set(
        StationDowntime.objects.filter(start__lte=now, end__gt=now).values_list("station_id", flat=True)
    )
    today = dict(
        ScheduledProcedureStep.objects.filter(
            start__gte=today_start, start__lt=today_start + timedelta(days=1)
        )
        .exclude(status="CANCELED")
        .values("station_id")
        .annotate(n=Count("id"))
        .values_list("station_id", "n")
    )
    in_progress = dict(
        ScheduledProcedureStep.objects.filter(status="STARTED")
        .values("station_id")
        .annotate(n=Count("id"))
        .values_list("station_id", "n")
    )
    out = []
    for st in Station.objects.order_by("modality", "ae_title"):
        if not st.active:
            state = "inactive"
        elif st.pk in down_now:
            state = "down"
        elif in_progress.get(st.pk):
            state = "in_use"
        else:
            state = "available"
        out.append(
            {
                "station": st,
                "state": state,
                "today": today.get(st.pk, 0),
                "in_progress": in_progress.get(st.pk, 0),
            }
        )
    return out


def downtime_list(*, since=None, station=None, limit: int = 200):
    qs = StationDowntime.objects.select_related("station", "created_by").order_by("-start")
    if since:
        qs = qs.filter(end__gte=since)
    if station:
        qs = qs.filter(station=station)
    return qs[:limit]


def fig_materials(period: Period) -> Figure:
    qs = MaterialUsage.objects.filter(at__gte=period.start, at__lt=period.end)
    if period.modality:
        qs = qs.filter(procedure__procedure_type__modality=period.modality)
    used = dict(qs.values("item_id").annotate(q=Sum("quantity")).values_list("item_id", "q"))
    exams = dict(
        qs.values("item_id").annotate(n=Count("procedure_id", distinct=True)).values_list("item_id", "n")
    )
    rows = []
    for item in MaterialItem.objects.filter(Q(active=True) | Q(pk__in=list(used))).order_by("kind", "code"):
        rows.append(
            [
                item.code,
                item.name,
                item.kind,
                item.unit,
                used.get(item.pk) or 0,
                exams.get(item.pk, 0),
                item.stock_level,
                item.low_stock_threshold,
                "LOW" if item.is_low else "",
            ]
        )
    return Figure(
        name="materials",
        title=_("Material consumption in the period"),
        columns=[
            _("Code"),
            _("Name"),
            _("Kind"),
            _("Unit"),
            _("Used"),
            _("Exams"),
            _("In stock"),
            _("Low-stock threshold"),
            _("Low stock"),
        ],
        rows=rows,
        series_columns=[4],
        horizontal=True,
    )


def material_low_stock():
    return MaterialItem.objects.filter(active=True, stock_level__lte=F("low_stock_threshold")).order_by(
        "code"
    )
