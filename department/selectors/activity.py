"""Cancellations, no-shows, volume and station utilisation."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, F, Min, OuterRef, Subquery, Sum
from django.db.models.functions import TruncDay, TruncWeek
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext as gt

from scheduling.models import (
    ProcedureEvent,
    ProcedureStatus,
    ScheduledProcedureStep,
    Station,
    StationDowntime,
)

from ..figures import Figure, Period
from ..models import ProcedureMilestone
from .base import (
    BUCKET_LABELS,
    DIMENSION_LABELS,
    NO_SHOW_GRACE,
    sql_path,
)


def fig_cancellations(period: Period) -> Figure:
    """Cancellations in the period by reason, and no-shows (appointment passed, never arrived)."""
    qs = ProcedureEvent.objects.filter(action="cancel", at__gte=period.start, at__lt=period.end)
    if period.modality:
        qs = qs.filter(requested_procedure__procedure_type__modality=period.modality)
    rows: list[list] = []
    no_show = no_show_count(period)
    for r in qs.values("reason").annotate(n=Count("id")).order_by("-n", "reason"):
        if is_no_show_reason(r["reason"]):
            no_show += r["n"]  # a cancellation recorded as a no-show is one
        elif len(rows) < 20:
            rows.append([r["reason"] or _("(no reason)"), r["n"]])
    # One "No-show" bar: never-arrived appointments plus cancellations giving a no-show reason.
    rows.append([_("No-show"), no_show])
    return Figure(
        name="cancellations",
        title=_("Cancellations by reason, and no-shows"),
        columns=[_("Reason"), _("Procedures")],
        rows=rows,
        series_columns=[1],
        horizontal=True,
    )


# Cancellation reasons that mean the patient did not come (the form's choice, common wordings,
# and their translations), compared case-insensitively.
NO_SHOW_REASONS = {"no-show", "no show", "noshow", "did not attend", "patient did not attend", "dna"}


def is_no_show_reason(reason: str | None) -> bool:
    text = (reason or "").strip().lower().rstrip(".")
    if not text:
        return False
    translated = {gt("No-show").lower(), gt("Patient did not attend").lower()}
    return text in NO_SHOW_REASONS or text in translated


def no_show_count(period: Period, *, now=None) -> int:
    """Appointments in the period that started more than 2 h ago and were never arrived."""
    now = now or timezone.now()
    qs = ScheduledProcedureStep.objects.filter(
        start__gte=period.start,
        start__lt=min(period.end, now - NO_SHOW_GRACE),
        requested_procedure__status=ProcedureStatus.SCHEDULED,
    )
    if period.modality:
        qs = qs.filter(modality=period.modality)
    return qs.values("requested_procedure_id").distinct().count()


# ---------------------------------------------------------------------------------------
# Volumes and workload


def fig_volume(period: Period, *, by: str = "day", per: str = "modality") -> Figure:
    """Completed exams per day (or week) per modality (or station), from ``complete`` events."""
    trunc = TruncWeek if by == "week" else TruncDay
    if sql_path():
        key = "modality" if per == "modality" else "station"
        milestones = ProcedureMilestone.objects.filter(completed__gte=period.start, completed__lt=period.end)
        if period.modality:
            milestones = milestones.filter(modality=period.modality)
        data = (
            milestones.annotate(bucket=trunc("completed", tzinfo=timezone.get_current_timezone()))
            .values("bucket", key)
            .annotate(n=Count("pk"))
            .order_by("bucket")
        )
        return _volume_figure(period, by, per, key, data)
    key = "requested_procedure__procedure_type__modality" if per == "modality" else "station"
    qs = ProcedureEvent.objects.filter(action="complete", at__gte=period.start, at__lt=period.end)
    if period.modality:
        qs = qs.filter(requested_procedure__procedure_type__modality=period.modality)
    if per == "station":
        # The station is the one the exam was booked on (its latest step).

        qs = qs.annotate(
            station=Subquery(
                ScheduledProcedureStep.objects.filter(
                    requested_procedure_id=OuterRef("requested_procedure_id")
                )
                .order_by("-start")
                .values("station__ae_title")[:1]
            )
        )
    data = (
        qs.annotate(bucket=trunc("at", tzinfo=timezone.get_current_timezone()))
        .values("bucket", key)
        .annotate(n=Count("id"))
        .order_by("bucket")
    )
    return _volume_figure(period, by, per, key, data)


def _volume_figure(period: Period, by: str, per: str, key: str, data) -> Figure:
    series: set[str] = set()
    table: dict = defaultdict(dict)
    for r in data:
        bucket = timezone.localtime(r["bucket"]).date() if hasattr(r["bucket"], "hour") else r["bucket"]
        series.add(r[key] or "?")
        table[bucket][r[key] or "?"] = r["n"]
    # Every day/week of the period appears, empty ones as zero.
    buckets = []
    d = period.first
    while d <= period.last:
        b = d - timedelta(days=d.weekday()) if by == "week" else d
        if b not in buckets:
            buckets.append(b)
        d += timedelta(days=1)
    cols = sorted(series)
    rows = [
        [b.isoformat(), *[table.get(b, {}).get(c, 0) for c in cols], sum(table.get(b, {}).values())]
        for b in buckets
    ]
    return Figure(
        name=f"volume_{per}_{by}",
        title=_("Exams per %(by)s per %(per)s")
        % {"by": BUCKET_LABELS.get(by, by), "per": DIMENSION_LABELS[per][1]},
        columns=[_("Week") if by == "week" else _("Day"), *cols, _("Total")],
        rows=rows,
        chart_type="stacked",
        series_columns=list(range(1, len(cols) + 1)),
    )


def station_utilisation(period: Period, *, now=None) -> list[list]:
    """Per station: available, booked and performed minutes and the two utilisation ratios.

    available = whole booking slots in the working hours × days − downtime within working hours;
    booked    = scheduled steps (not cancelled) in the period;
    performed = start → complete/discontinue of the exams, from the event log (MPPS drives it).
    """
    stations = list(Station.objects.filter(active=True).order_by("modality", "ae_title"))
    if period.modality:
        stations = [s for s in stations if s.modality == period.modality]
    booked = dict(
        ScheduledProcedureStep.objects.filter(start__gte=period.start, start__lt=period.end)
        .exclude(status="CANCELED")
        .values("station_id")
        .annotate(d=Sum(F("end") - F("start")))
        .values_list("station_id", "d")
    )
    downs: defaultdict[int, float] = defaultdict(float)
    for st_id, start, end in StationDowntime.objects.filter(
        start__lt=period.end, end__gt=period.start
    ).values_list("station_id", "start", "end"):
        downs[st_id] += _overlap_working_minutes(
            next((s for s in stations if s.pk == st_id), None), max(start, period.start), min(end, period.end)
        )
    performed = _performed_minutes(period)
    rows = []
    for st in stations:
        open_minutes = st.open_minutes
        # Only whole booking slots count as available time.
        slot = max(st.slot_minutes or 1, 1)
        per_day = (max(open_minutes, 0) // slot) * slot
        available = max(per_day * period.days - downs.get(st.pk, 0.0), 0.0)
        b = booked.get(st.pk)
        b_min = b.total_seconds() / 60 if b else 0.0
        p_min = performed.get(st.pk, 0.0)
        rows.append(
            [
                st.ae_title,
                st.modality,
                round(available),
                round(b_min),
                round(p_min),
                round(100 * b_min / available, 1) if available else None,
                round(100 * p_min / available, 1) if available else None,
            ]
        )
    return rows


def _overlap_working_minutes(station, start, end) -> float:
    if station is None or end <= start:
        return 0.0
    total = 0.0
    # From the previous day: an overnight shift that began then may reach into the period.
    day = timezone.localtime(start).date() - timedelta(days=1)
    last = timezone.localtime(end).date()

    while day <= last:
        open_, close = station.window(day)
        a, b = max(open_, start), min(close, end)
        if b > a:
            total += (b - a).total_seconds() / 60
        day += timedelta(days=1)
    return total


def _performed_minutes(period: Period) -> dict[int, float]:
    if sql_path():
        by_ae = dict(Station.objects.values_list("ae_title", "pk"))
        rows = (
            ProcedureMilestone.objects.filter(
                started__gte=period.start, started__lt=period.end, ended__gt=F("started")
            )
            .values("station")
            .annotate(d=Sum(F("ended") - F("started")))
            .values_list("station", "d")
        )
        return {by_ae[ae]: d.total_seconds() / 60 for ae, d in rows if ae in by_ae and d}
    starts = dict(
        ProcedureEvent.objects.filter(action="start", at__gte=period.start, at__lt=period.end)
        .values("requested_procedure_id")
        .annotate(t=Min("at"))
        .values_list("requested_procedure_id", "t")
    )
    ends = dict(
        ProcedureEvent.objects.filter(
            requested_procedure_id__in=list(starts), action__in=["complete", "discontinue"]
        )
        .values("requested_procedure_id")
        .annotate(t=Min("at"))
        .values_list("requested_procedure_id", "t")
    )
    station_of = {}
    for pk, st in (
        ScheduledProcedureStep.objects.filter(requested_procedure_id__in=list(starts))
        .order_by("requested_procedure_id", "start")
        .values_list("requested_procedure_id", "station_id")
    ):
        station_of[pk] = st
    out: dict[int, float] = defaultdict(float)
    for pk, t0 in starts.items():
        t1 = ends.get(pk)
        if t1 and t1 > t0 and pk in station_of:
            out[station_of[pk]] += (t1 - t0).total_seconds() / 60
    return dict(out)


def fig_utilisation(period: Period) -> Figure:
    return Figure(
        name="utilisation",
        title=_("Station utilisation (%)"),
        columns=[
            _("Station"),
            _("Modality"),
            _("Available (min)"),
            _("Booked (min)"),
            _("Performed (min)"),
            _("Booked %"),
            _("Performed %"),
        ],
        rows=station_utilisation(period),
        series_columns=[5, 6],
        unit="%",
    )
