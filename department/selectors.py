"""Reads for the department dashboards (科室信息报表, 差错统计, 设备, 物资).

Turnaround times come from the event logs only (``scheduling.ProcedureEvent``,
``reports.ReportEvent``), never from the mutable convenience timestamps: a procedure's
milestones are

    ordered    first ``order`` event
    scheduled  appointment start of its (latest) scheduled step
    arrived    last ``arrive`` event after the last ``reschedule`` (a reschedule sends the
               patient back to "scheduled": an earlier arrival no longer counts)
    started    first ``start`` event
    completed  first ``complete`` event (a discontinued exam never completes)
    images     first ``images_available`` event
    prelim     first ``submitted`` report event
    final      first ``signed`` report event (addenda do not move it)

and a step's time is the difference between two milestones, never negative: when the end
milestone came first (a patient arriving before the appointment, images arriving while the
exam was still in progress) the step took no time. A step is counted only for procedures
that have both.

On PostgreSQL the milestones are kept in ``department.ProcedureMilestone`` (derived from the
two logs by ``services.milestones_sync``, which every figure runs first) and every figure is
one SQL aggregate over it (``percentile_cont`` with ``GROUPING SETS``). On SQLite (the
embedded demo) the same milestones are read from the logs with the ORM and aggregated in
Python. Tests run both paths on one hand-built history and require the same numbers.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncDay, TruncWeek
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from scheduling.models import (
    ProcedureEvent,
    ProcedureStatus,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationDowntime,
)

from .figures import Figure, Period, percentile

logger = logging.getLogger(__name__)

MILESTONES = ["ordered", "scheduled", "arrived", "started", "completed", "images", "prelim", "final"]


@dataclass(frozen=True)
class Step:
    key: str
    start: str
    end: str

    @property
    def label(self) -> str:
        return str(STEP_LABELS[self.key])

    def sql(self, alias: str = "m") -> str:
        """Seconds from start to end milestone, floored at zero (the process may run ahead)."""
        a, b = f"{alias}.{self.start}", f"{alias}.{self.end}"
        # Not greatest(…, 0): PostgreSQL's greatest() ignores NULL, a missing milestone must stay NULL.
        return f"(CASE WHEN {b} >= {a} THEN extract(epoch FROM ({b} - {a})) WHEN {b} < {a} THEN 0 END)"


STEPS = [
    Step("order_to_scheduled", "ordered", "scheduled"),
    Step("scheduled_to_arrived", "scheduled", "arrived"),
    Step("arrived_to_started", "arrived", "started"),
    Step("started_to_completed", "started", "completed"),
    Step("completed_to_images", "completed", "images"),
    Step("images_to_preliminary", "images", "prelim"),
    Step("preliminary_to_final", "prelim", "final"),
    Step("order_to_completed", "ordered", "completed"),
    Step("completed_to_preliminary", "completed", "prelim"),
    Step("completed_to_final", "completed", "final"),
    Step("order_to_final", "ordered", "final"),
]
STEP_BY_KEY = {s.key: s for s in STEPS}
STEP_LABELS = {
    "order_to_scheduled": gettext_lazy("order → scheduled"),
    "scheduled_to_arrived": gettext_lazy("scheduled → arrived"),
    "arrived_to_started": gettext_lazy("arrived → started"),
    "started_to_completed": gettext_lazy("started → completed"),
    "completed_to_images": gettext_lazy("completed → images"),
    "images_to_preliminary": gettext_lazy("images → preliminary"),
    "preliminary_to_final": gettext_lazy("preliminary → final"),
    "order_to_completed": gettext_lazy("order → completed"),
    "completed_to_preliminary": gettext_lazy("completed → preliminary"),
    "completed_to_final": gettext_lazy("completed → final"),
    "order_to_final": gettext_lazy("order → final"),
}
DIMENSION_LABELS = {
    "modality": (gettext_lazy("Modality"), gettext_lazy("modality")),
    "station": (gettext_lazy("Station"), gettext_lazy("station")),
    "priority": (gettext_lazy("Priority"), gettext_lazy("priority")),
    "radiologist": (gettext_lazy("Radiologist"), gettext_lazy("radiologist")),
}
BUCKET_LABELS = {"day": gettext_lazy("day"), "week": gettext_lazy("week")}
DIMENSIONS = ["modality", "station", "priority", "radiologist"]

# Turnaround targets in minutes per priority (configurable: settings.RIS_TAT_TARGETS).
DEFAULT_TAT_TARGETS = {
    "STAT": {"order_to_completed": 60, "completed_to_preliminary": 30, "completed_to_final": 60},
    "HIGH": {"order_to_completed": 240, "completed_to_final": 240},
    "ROUTINE": {"completed_to_final": 24 * 60},
}
BACKLOG_BUCKETS = [
    (0, 1, "< 1 h"),
    (1, 4, "1–4 h"),
    (4, 24, "4–24 h"),
    (24, 72, "1–3 d"),
    (72, None, "> 3 d"),
]
NO_SHOW_GRACE = timedelta(hours=2)


def tat_targets() -> dict[str, dict[str, int]]:
    return getattr(settings, "RIS_TAT_TARGETS", DEFAULT_TAT_TARGETS)


_TABLES_SEEN: set[str] = set()


def _model(app_label: str, name: str):
    """Another app's model, or None while that app has not shipped it (or its table) yet."""
    try:
        model = apps.get_model(app_label, name)
    except LookupError:
        return None
    table = model._meta.db_table
    if table not in _TABLES_SEEN:
        if table not in connection.introspection.table_names():
            return None
        _TABLES_SEEN.add(table)
    return model


def use_sql() -> bool:
    return connection.vendor == "postgresql"


def people_names(usernames) -> dict[str, str]:
    """username → the name people know: the printed name, else the full name, else the username.

    The figures keep usernames as their stable keys; this is applied when a row is labelled.
    Two people with the same name are told apart by their username.
    """
    from django.contrib.auth import get_user_model

    wanted = {u for u in usernames if u}
    if not wanted:
        return {}
    names = {}
    for user in get_user_model().objects.filter(username__in=wanted).select_related("ris_profile"):
        profile = getattr(user, "ris_profile", None)
        printed = (profile.printed_name if profile is not None else "").strip()
        names[user.username] = printed or user.get_full_name().strip() or user.username
    taken = Counter(names.values())
    return {u: (f"{n} ({u})" if taken[n] > 1 and n != u else n) for u, n in names.items()}


# ---------------------------------------------------------------------------------------
# Turnaround: the milestones of each procedure ordered in the period.

# The milestones of each procedure ordered in the period, assembled from only the pieces a
# figure needs. The BETWEEN bounds are always true (every id lies between the smallest and
# largest id of ``p``) but let PostgreSQL read each table by an index range instead of
# scanning it: ids grow with time, so procedures ordered in one period sit close together.
_P = """
WITH p AS MATERIALIZED (
    SELECT e.requested_procedure_id AS id, min(e.at) AS ordered
    FROM scheduling_procedureevent e
    WHERE e.action = 'order' AND {p_filter}
    GROUP BY e.requested_procedure_id
), pr AS MATERIALIZED (
    SELECT rp.id, rp.order_id, rp.procedure_type_id
    FROM scheduling_requestedprocedure rp JOIN p ON p.id = rp.id
    WHERE rp.id BETWEEN (SELECT min(id) FROM p) AND (SELECT max(id) FROM p)
)"""
_PE = """, pe AS MATERIALIZED (
    SELECT e.requested_procedure_id AS id,
           CASE WHEN max(e.at) FILTER (WHERE e.action = 'arrive')
                     > coalesce(max(e.at) FILTER (WHERE e.action = 'reschedule'), '-infinity')
                THEN max(e.at) FILTER (WHERE e.action = 'arrive') END AS arrived,
           min(e.at) FILTER (WHERE e.action = 'start') AS started,
           min(e.at) FILTER (WHERE e.action = 'complete') AS completed,
           min(e.at) FILTER (WHERE e.action IN ('complete', 'discontinue')) AS ended,
           min(e.at) FILTER (WHERE e.action = 'images_available') AS images
    FROM scheduling_procedureevent e JOIN p ON p.id = e.requested_procedure_id
    WHERE e.action IN ('arrive', 'reschedule', 'start', 'complete', 'discontinue', 'images_available')
      AND e.requested_procedure_id BETWEEN (SELECT min(id) FROM p) AND (SELECT max(id) FROM p)
    GROUP BY e.requested_procedure_id
)"""
_ST = """, st AS MATERIALIZED (
    SELECT DISTINCT ON (s.requested_procedure_id) s.requested_procedure_id AS id, s.station_id, s.start
    FROM scheduling_scheduledprocedurestep s JOIN p ON p.id = s.requested_procedure_id
    WHERE s.requested_procedure_id BETWEEN (SELECT min(id) FROM p) AND (SELECT max(id) FROM p)
    ORDER BY s.requested_procedure_id, s.start DESC
)"""
_RE = """, rr AS MATERIALIZED (
    SELECT r.id AS report_id, r.requested_procedure_id AS id, r.author_id
    FROM reports_report r JOIN p ON p.id = r.requested_procedure_id
    WHERE r.requested_procedure_id BETWEEN (SELECT min(id) FROM p) AND (SELECT max(id) FROM p)
), re AS MATERIALIZED (
    SELECT rr.id, rr.author_id,
           min(x.at) FILTER (WHERE x.action = 'submitted') AS prelim,
           min(x.at) FILTER (WHERE x.action = 'signed') AS final,
           min(x.at) FILTER (WHERE x.action = 'returned') AS returned,
           min(x.at) FILTER (WHERE x.action = 'addendum') AS addendum,
           (array_agg(x.actor_id ORDER BY x.at, x.id) FILTER (WHERE x.action = 'signed'))[1] AS signer_id
    FROM reports_reportevent x JOIN rr ON rr.report_id = x.report_id
    WHERE x.action IN ('submitted', 'signed', 'returned', 'addendum')
      AND x.report_id BETWEEN (SELECT min(report_id) FROM rr) AND (SELECT max(report_id) FROM rr)
    GROUP BY rr.id, rr.author_id
)"""
# column -> (CTE pieces it needs, SELECT expression, JOIN clauses)
_COLUMNS = {
    "modality": ((), "pt.modality", ()),
    "priority": ((), "o.priority", ("o",)),
    "station": (("st",), "stn.ae_title", ("st", "stn")),
    "radiologist": (("re",), "u.username", ("re", "u")),
    "signer": (("re",), "us.username", ("re", "us")),
    "returned": (("re",), "re.returned", ("re",)),
    "addendum": (("re",), "re.addendum", ("re",)),
    "ordered": ((), "p.ordered", ()),
    "scheduled": (("st",), "st.start", ("st",)),
    "arrived": (("pe",), "pe.arrived", ("pe",)),
    "started": (("pe",), "pe.started", ("pe",)),
    "completed": (("pe",), "pe.completed", ("pe",)),
    "ended": (("pe",), "pe.ended", ("pe",)),
    "images": (("pe",), "pe.images", ("pe",)),
    "prelim": (("re",), "re.prelim", ("re",)),
    "final": (("re",), "re.final", ("re",)),
}
_JOINS = {
    "o": "JOIN scheduling_order o ON o.id = pr.order_id"
    " AND o.id BETWEEN (SELECT min(order_id) FROM pr) AND (SELECT max(order_id) FROM pr)",
    "st": "LEFT JOIN st ON st.id = p.id",
    "stn": "LEFT JOIN scheduling_station stn ON stn.id = st.station_id",
    "pe": "LEFT JOIN pe ON pe.id = p.id",
    "re": "LEFT JOIN re ON re.id = p.id",
    "u": "LEFT JOIN auth_user u ON u.id = re.author_id",
    "us": "LEFT JOIN auth_user us ON us.id = re.signer_id",
}


# Which procedures ``p`` holds: ordered in the period, a list of ids, or an id range.
_P_FILTERS = {
    "period": "e.at >= %(start)s AND e.at < %(end)s",
    "ids": "e.requested_procedure_id = ANY(%(ids)s)",
    "range": "e.requested_procedure_id BETWEEN %(lo)s AND %(hi)s",
}


def _milestone_cte(columns=None, source: str = "period") -> str:
    """``WITH … m AS (…)``: one row per procedure of ``source``, with ``columns``."""
    columns = list(_COLUMNS) if columns is None else list(dict.fromkeys(["priority", *columns]))
    have_reports = _model("reports", "ReportEvent") is not None
    pieces, joins, select = [], [], ["p.id"]
    for col in columns:
        need, expr, join = _COLUMNS[col]
        if "re" in need and not have_reports:
            expr = "NULL::varchar" if col in ("radiologist", "signer") else "NULL::timestamptz"
            need, join = (), ()
        pieces += [n for n in need if n not in pieces]
        joins += [j for j in join if j not in joins]
        select.append(f"{expr} AS {col}")
    order = ["o", "st", "stn", "pe", "re", "u", "us"]
    ctes = {"pe": _PE, "st": _ST, "re": _RE}
    # Assembled from the constant pieces above only; values travel as parameters.
    return (
        _P.format(p_filter=_P_FILTERS[source])  # noqa: S608
        + "".join(ctes[n] for n in ["pe", "st", "re"] if n in pieces)
        + ", m AS (\n    SELECT "
        + ", ".join(select)
        + "\n    FROM p JOIN pr ON pr.id = p.id"
        + " JOIN scheduling_proceduretype pt ON pt.id = pr.procedure_type_id\n    "
        + "\n    ".join(_JOINS[j] for j in order if j in joins)
        + "\n    WHERE (%(modality)s = '' OR pt.modality = %(modality)s)\n)\n"
    )


_FACT = """
WITH m AS (
    SELECT procedure_id AS id, modality, priority, station, radiologist,
           ordered, scheduled, arrived, started, completed, images, prelim, final
    FROM department_proceduremilestone
    WHERE ordered >= %(start)s AND ordered < %(end)s AND (%(modality)s = '' OR modality = %(modality)s)
)
"""


def _fact_cte() -> str:
    """The period's procedures from the milestone table, brought up to date with the event logs."""
    from .services import milestones_sync

    milestones_sync()
    return _FACT


def _params(period: Period) -> dict:
    return {"start": period.start, "end": period.end, "modality": period.modality}


def milestones_python(period: Period) -> list[dict]:
    """The same milestones as the SQL CTE, read with the ORM (portable; SQLite fallback)."""
    ordered = dict(
        ProcedureEvent.objects.filter(action="order", at__gte=period.start, at__lt=period.end)
        .values("requested_procedure_id")
        .annotate(t=Min("at"))
        .values_list("requested_procedure_id", "t")
    )
    procs = RequestedProcedure.objects.filter(pk__in=list(ordered))
    if period.modality:
        procs = procs.filter(procedure_type__modality=period.modality)
    rows: dict[int, dict] = {}
    for pk, modality, priority in procs.values_list("pk", "procedure_type__modality", "order__priority"):
        rows[pk] = dict.fromkeys(MILESTONES) | {
            "id": pk,
            "modality": modality,
            "priority": priority,
            "station": None,
            "radiologist": None,
            "ordered": ordered[pk],
        }
    ids = list(rows)
    for pk, ae, start in (
        ScheduledProcedureStep.objects.filter(requested_procedure_id__in=ids)
        .order_by("requested_procedure_id", "start")
        .values_list("requested_procedure_id", "station__ae_title", "start")
    ):
        rows[pk]["station"], rows[pk]["scheduled"] = ae, start  # the latest start wins
    names = {"arrive": "arrived", "start": "started", "complete": "completed", "images_available": "images"}
    rescheduled: dict[int, datetime] = {}
    for pk, action, at in ProcedureEvent.objects.filter(
        requested_procedure_id__in=ids, action__in=[*names, "reschedule"]
    ).values_list("requested_procedure_id", "action", "at"):
        if action == "reschedule":
            rescheduled[pk] = max(at, rescheduled.get(pk, at))
            continue
        key = names[action]
        cur = rows[pk][key]
        if cur is None or (at > cur if key == "arrived" else at < cur):
            rows[pk][key] = at
    for pk, last in rescheduled.items():
        if rows[pk]["arrived"] is not None and rows[pk]["arrived"] <= last:
            rows[pk]["arrived"] = None  # arrived for the old appointment, not the new one
    ReportEvent = _model("reports", "ReportEvent")
    if ReportEvent is not None:
        for pk, author, action, at in ReportEvent.objects.filter(
            report__requested_procedure_id__in=ids, action__in=["submitted", "signed"]
        ).values_list("report__requested_procedure_id", "report__author__username", "action", "at"):
            rows[pk]["radiologist"] = author
            key = "prelim" if action == "submitted" else "final"
            if rows[pk][key] is None or at < rows[pk][key]:
                rows[pk][key] = at
    return list(rows.values())


def _seconds(row: dict, step: Step) -> float | None:
    a, b = row.get(step.start), row.get(step.end)
    if a is None or b is None:
        return None
    return max((b - a).total_seconds(), 0.0)  # as Step.sql(): never negative


def tat_table(
    period: Period, *, dimensions: list[str] | None = None, steps: list[Step] | None = None
) -> list[dict]:
    """Median and 90th percentile (seconds) of every step, overall and per dimension.

    Rows: ``{"dimension": "all"|"modality"|…, "key": str, "n": procedures,
    "<step>_n": count, "<step>_p50": s, "<step>_p90": s}``. ``dimensions``/``steps`` narrow
    the work to what a figure shows (the overall row is always there).
    """
    dimensions = DIMENSIONS if dimensions is None else dimensions
    steps = STEPS if steps is None else steps
    if use_sql():
        return _cached(
            ("tat", period, tuple(dimensions), tuple(s.key for s in steps)),
            lambda: _tat_table_sql(period, dimensions, steps),
        )
    return tat_table_from_milestones(milestones_python(period), dimensions=dimensions, steps=steps)


def tat_table_from_milestones(
    rows: list[dict], *, dimensions: list[str] | None = None, steps: list[Step] | None = None
) -> list[dict]:
    dimensions = DIMENSIONS if dimensions is None else dimensions
    steps = STEPS if steps is None else steps
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    groups[("all", "")] = []
    for r in rows:
        groups[("all", "")].append(r)
        for dim in dimensions:
            if r.get(dim) is not None:
                groups[(dim, r[dim])].append(r)
    out = []
    for (dim, key), members in groups.items():
        row = {"dimension": dim, "key": key, "n": len(members)}
        for step in steps:
            vals = [v for v in (_seconds(m, step) for m in members) if v is not None]
            row[f"{step.key}_n"] = len(vals)
            row[f"{step.key}_p50"] = percentile(vals, 0.5)
            row[f"{step.key}_p90"] = percentile(vals, 0.9)
        out.append(row)
    return _sort_tat(out)


def _sort_tat(rows: list[dict]) -> list[dict]:
    order = {d: i for i, d in enumerate(["all", *DIMENSIONS])}
    return sorted(rows, key=lambda r: (order[r["dimension"]], str(r["key"])))


def _tat_table_sql(period: Period, dimensions: list[str], steps: list[Step]) -> list[dict]:
    aggs = []
    for st in steps:
        d = st.sql()
        # One sort per step gives both percentiles (an array argument).
        aggs.append(
            f"count({d}) AS {st.key}_n, "
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {d}) AS {st.key}_pct"
        )
    if dimensions:
        cols = ", ".join(f"m.{d}" for d in dimensions)
        sets = ", ".join(["()", *(f"(m.{d})" for d in dimensions)])
        grouping = f"GROUPING({cols})"
    else:
        cols, sets, grouping = "", "()", "0"
    select = (  # noqa: S608 - identifiers come from the constant STEPS/DIMENSIONS tables
        "SELECT {grouping} AS g{cols}, count(*) AS n, {aggs} FROM m GROUP BY GROUPING SETS ({sets})"
    ).format(grouping=grouping, cols=(", " + cols) if cols else "", aggs=", ".join(aggs), sets=sets)
    with connection.cursor() as cur:
        cur.execute(_fact_cte() + select, _params(period))
        names = [c.name for c in cur.description]
        raw = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    # GROUPING() sets bit k-1-i when dimension i is *not* grouped in that row.
    k = len(dimensions)
    masks = {(1 << k) - 1 if k else 0: "all"}
    for i, d in enumerate(dimensions):
        masks[((1 << k) - 1) & ~(1 << (k - 1 - i))] = d
    out = []
    for r in raw:
        dim = masks[r["g"]]
        key = "" if dim == "all" else r[dim]
        if dim != "all" and key is None:
            continue
        row = {"dimension": dim, "key": key, "n": r["n"]}
        for st in steps:
            pct = r[f"{st.key}_pct"] or [None, None]
            row[f"{st.key}_n"] = r[f"{st.key}_n"]
            row[f"{st.key}_p50"] = _f(pct[0])
            row[f"{st.key}_p90"] = _f(pct[1])
        out.append(row)
    return _sort_tat(out)


CACHE_SECONDS_DEFAULT = 60


def _cached(key, compute):
    """Short-lived cache of a heavy aggregate (settings.RIS_DASHBOARD_CACHE_SECONDS, 0 = off):
    a page's five turnaround charts share one computation, and reloads within a minute are free."""
    from django.core.cache import cache

    seconds = getattr(settings, "RIS_DASHBOARD_CACHE_SECONDS", CACHE_SECONDS_DEFAULT)
    if not seconds:
        return compute()
    cache_key = "ris.department." + hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    value = cache.get(cache_key)
    if value is None:
        value = compute()
        cache.set(cache_key, value, seconds)
    return value


def _f(v):
    return None if v is None else float(v)


# Durations are shown in the unit their magnitude calls for (one unit per figure, so a chart
# has one axis): minutes below 2 h, hours below 2 days, days beyond.
UNIT_SECONDS = {"min": 60, "h": 3600, "d": 86400}
UNIT_SYMBOLS = {"min": gettext_lazy("min"), "h": gettext_lazy("h"), "d": gettext_lazy("d")}
UNIT_WORDS = {"min": gettext_lazy("minutes"), "h": gettext_lazy("hours"), "d": gettext_lazy("days")}


def duration_unit(seconds) -> str:
    """The unit for a figure whose largest duration is max(seconds)."""
    largest = max((abs(v) for v in seconds if v is not None), default=0)
    if largest >= 2 * 86400:
        return "d"
    if largest >= 2 * 3600:
        return "h"
    return "min"


def _in_unit(seconds, unit: str):
    if seconds is None:
        return None
    return round(seconds / UNIT_SECONDS[unit], 1 if unit == "min" else 2)


def _duration_figure(*, rows_s: list[list], title, label_column_name: str, **kw) -> Figure:
    """rows_s: [label, n, p50 s, p90 s] → a Figure in the unit the largest value calls for.

    ``title(unit_word)`` builds the title, e.g. "Turnaround per step (hours)".
    """
    unit = duration_unit([v for r in rows_s for v in r[2:]])
    symbol = str(UNIT_SYMBOLS[unit])
    return Figure(
        title=title(UNIT_WORDS[unit]),
        columns=[
            label_column_name,
            _("Procedures"),
            _("Median (%(unit)s)") % {"unit": symbol},
            _("90th percentile (%(unit)s)") % {"unit": symbol},
        ],
        rows=[[r[0], r[1], _in_unit(r[2], unit), _in_unit(r[3], unit)] for r in rows_s],
        series_columns=[2, 3],
        unit=symbol,
        **kw,
    )


def fig_tat_chain(period: Period) -> Figure:
    table = tat_table(period, dimensions=[])
    overall = next(r for r in table if r["dimension"] == "all")
    rows = [
        [s.label, overall.get(f"{s.key}_n", 0), overall.get(f"{s.key}_p50"), overall.get(f"{s.key}_p90")]
        for s in STEPS
    ]
    return _duration_figure(
        name="tat_steps",
        title=lambda unit: _("Turnaround per step (%(unit)s)") % {"unit": unit},
        label_column_name=_("Step"),
        rows_s=rows,
        horizontal=True,
    )


def fig_tat_by(period: Period, dimension: str, step_key: str = "completed_to_final") -> Figure:
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    step = STEP_BY_KEY.get(step_key) or STEP_BY_KEY["completed_to_final"]
    table = [
        r for r in tat_table(period, dimensions=[dimension], steps=[step]) if r["dimension"] == dimension
    ]
    names = people_names([r["key"] for r in table]) if dimension == "radiologist" else {}
    rows = [
        [
            names.get(r["key"], r["key"]),
            r.get(f"{step.key}_n", 0),
            r.get(f"{step.key}_p50"),
            r.get(f"{step.key}_p90"),
        ]
        for r in table
    ]
    return _duration_figure(
        name=f"tat_by_{dimension}",
        title=lambda unit: _("%(step)s per %(dim)s (%(unit)s)")
        % {"step": step.label, "dim": DIMENSION_LABELS[dimension][1], "unit": unit},
        label_column_name=str(DIMENSION_LABELS[dimension][0]),
        rows_s=rows,
    )


def tat_trend(period: Period, step: Step) -> list[list]:
    """[week start (Monday), n, median s, p90 s] for procedures ordered in each week."""
    weeks: list = []
    d = period.first - timedelta(days=period.first.weekday())
    while d <= period.last:
        weeks.append(d)
        d += timedelta(days=7)
    found: dict = {}
    if use_sql():
        d_expr = step.sql()
        # The step's columns come from the constant STEPS table; values are parameters.
        select = (
            f"SELECT (date_trunc('week', m.ordered AT TIME ZONE %(tz)s))::date AS wk, count({d_expr}), "  # noqa: S608
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {d_expr}) FROM m GROUP BY 1"
        )
        params = _params(period) | {"tz": timezone.get_current_timezone_name()}

        def compute():
            with connection.cursor() as cur:
                cur.execute(_fact_cte() + select, params)
                return {wk: (n, (pct or [None, None])) for wk, n, pct in cur.fetchall()}

        found = _cached(("trend", period, step.key), compute)
    else:
        groups: dict = defaultdict(list)
        for r in milestones_python(period):
            local = timezone.localtime(r["ordered"]).date()
            v = _seconds(r, step)
            groups[local - timedelta(days=local.weekday())].append(v)
        for wk, vals in groups.items():
            vals = [v for v in vals if v is not None]
            found[wk] = (len(vals), [percentile(vals, 0.5), percentile(vals, 0.9)])
    out = []
    for wk in weeks:
        n, (p50, p90) = found.get(wk, (0, [None, None]))
        out.append([wk, n, _f(p50), _f(p90)])
    return out


def fig_tat_trend(period: Period, step_key: str = "completed_to_final") -> Figure:
    step = STEP_BY_KEY.get(step_key) or STEP_BY_KEY["completed_to_final"]
    rows = [[wk.isoformat(), n, p50, p90] for wk, n, p50, p90 in tat_trend(period, step)]
    return _duration_figure(
        name="tat_trend",
        title=lambda unit: _("%(step)s per week (%(unit)s)") % {"step": step.label, "unit": unit},
        label_column_name=_("Week"),
        rows_s=rows,
        chart_type="line",
    )


def tat_compliance(period: Period) -> list[list]:
    """Per priority and targeted step: [priority, step, target min, n, within target, %]."""
    targets = tat_targets()
    if use_sql():
        return _cached(
            ("compliance", period, repr(sorted(targets.items()))), lambda: _compliance_sql(period, targets)
        )
    return _compliance_rows(_compliance_counts_python(period, targets), targets)


def _compliance_sql(period: Period, targets) -> list[list]:
    parts, params = [], _params(period)
    for i, (prio, steps) in enumerate(sorted(targets.items())):
        for j, (key, minutes) in enumerate(sorted(steps.items())):
            s = STEP_BY_KEY[key]
            d = s.sql()
            params[f"p{i}_{j}"] = prio
            params[f"t{i}_{j}"] = minutes * 60
            parts.append(
                f"SELECT %(p{i}_{j})s::text, '{key}', count({d}), "  # noqa: S608 - constants only
                f"count(*) FILTER (WHERE {d} <= %(t{i}_{j})s) FROM m WHERE m.priority = %(p{i}_{j})s"
            )
    if not parts:
        return []
    with connection.cursor() as cur:
        cur.execute(_fact_cte() + " UNION ALL ".join(parts), params)
        counts = {(p, k): (n, ok) for p, k, n, ok in cur.fetchall()}
    return _compliance_rows(counts, targets)


def _compliance_counts_python(period: Period, targets) -> dict:
    rows = milestones_python(period)
    counts = {}
    for prio, steps in targets.items():
        for key, minutes in steps.items():
            vals = [_seconds(r, STEP_BY_KEY[key]) for r in rows if r["priority"] == prio]
            vals = [v for v in vals if v is not None]
            counts[(prio, key)] = (len(vals), sum(1 for v in vals if v <= minutes * 60))
    return counts


def _compliance_rows(counts: dict, targets) -> list[list]:
    out = []
    for prio, steps in sorted(targets.items(), key=lambda kv: _prio_rank(kv[0])):
        for key, minutes in sorted(steps.items()):
            n, ok = counts.get((prio, key), (0, 0))
            out.append([prio, str(STEP_LABELS[key]), minutes, n, ok, round(100.0 * ok / n, 1) if n else None])
    return out


def _prio_rank(p: str) -> int:
    from scheduling.models import PRIORITY_RANK

    return PRIORITY_RANK.get(p, 9)


def fig_compliance(period: Period) -> Figure:
    rows = tat_compliance(period)
    return Figure(
        name="tat_compliance",
        title=_("Turnaround targets met (%)"),
        columns=[_("Priority"), _("Step"), _("Target (min)"), _("Procedures"), _("Within target"), _("%")],
        rows=[[f"{r[0]} {r[1]}", *r[1:]] for r in rows],
        series_columns=[5],
        unit="%",
        horizontal=True,
    )


# ---------------------------------------------------------------------------------------
# Backlog, no-shows and cancellations


def backlog(*, now=None, window_days: int | None = None) -> list[list]:
    """Completed exams whose report is not signed yet, by age since completion.

    Age counts from the procedure's completion time; the window (settings.RIS_BACKLOG_WINDOW_DAYS,
    default 30) bounds the scan so the figure stays fast at any table size.
    """
    now = now or timezone.now()
    window = window_days or int(getattr(settings, "RIS_BACKLOG_WINDOW_DAYS", 30))
    if use_sql():
        return _backlog_sql(now, window)
    qs = RequestedProcedure.objects.filter(
        status=ProcedureStatus.COMPLETED, ended_at__gte=now - timedelta(days=window), ended_at__lte=now
    )
    if _model("reports", "ReportEvent") is not None:
        # "Signed" as in the turnaround milestones: a ``signed`` report event exists.
        qs = qs.exclude(report__events__action="signed")
    agg = qs.aggregate(
        **{
            f"b{i}": Count(
                "pk",
                filter=Q(ended_at__lte=now - timedelta(hours=lo))
                & (Q(ended_at__gt=now - timedelta(hours=hi)) if hi is not None else Q()),
            )
            for i, (lo, hi, _label) in enumerate(BACKLOG_BUCKETS)
        },
    )
    return [[label, agg[f"b{i}"]] for i, (_lo, _hi, label) in enumerate(BACKLOG_BUCKETS)]


def _backlog_sql(now, window: int) -> list[list]:
    from .models import ProcedureMilestone

    _fact_cte()  # sync the milestone table first
    qs = ProcedureMilestone.objects.filter(
        completed__isnull=False,
        final__isnull=True,
        completed__gte=now - timedelta(days=window),
        completed__lte=now,
    )
    agg = qs.aggregate(
        **{
            f"b{i}": Count(
                "pk",
                filter=Q(completed__lte=now - timedelta(hours=lo))
                & (Q(completed__gt=now - timedelta(hours=hi)) if hi is not None else Q()),
            )
            for i, (lo, hi, _label) in enumerate(BACKLOG_BUCKETS)
        }
    )
    return [[label, agg[f"b{i}"]] for i, (_lo, _hi, label) in enumerate(BACKLOG_BUCKETS)]


def fig_backlog(period: Period | None = None) -> Figure:
    return Figure(
        name="backlog",
        title=_("Waiting to be read, by age"),
        columns=[_("Age"), _("Exams")],
        rows=backlog(),
        series_columns=[1],
        note=_("Completed exams without a signed report (now, not the chosen period)."),
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
    from django.utils.translation import gettext as gt

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
    if use_sql():
        from .models import ProcedureMilestone

        _fact_cte()  # sync the milestone table first
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
        from django.db.models import OuterRef, Subquery

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
    if use_sql():
        from .models import ProcedureMilestone

        _fact_cte()  # sync the milestone table first
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


def report_facts_python(period: Period, *, field: str) -> list[dict]:
    """Per report whose first ``submitted`` (field="prelim") or first ``signed``
    (field="final") event lies in the period: author, first signer, returned?, addendum?
    The portable twin of the milestone table's report columns."""
    ReportEvent = _model("reports", "ReportEvent")
    if ReportEvent is None:
        return []
    action = "submitted" if field == "prelim" else "signed"
    firsts = ReportEvent.objects.filter(action=action).values("report_id").annotate(t=Min("at"))
    firsts = firsts.filter(t__gte=period.start, t__lt=period.end)
    if period.modality:
        firsts = firsts.filter(report__requested_procedure__procedure_type__modality=period.modality)
    ids = [r["report_id"] for r in firsts]
    facts = {
        pk: {"radiologist": author, "signer": None, "returned": False, "addendum": False}
        for pk, author in _model("reports", "Report")
        .objects.filter(pk__in=ids)
        .values_list("pk", "author__username")
    }
    for pk, act, actor in (
        ReportEvent.objects.filter(report_id__in=ids, action__in=["signed", "returned", "addendum"])
        .order_by("at", "id")
        .values_list("report_id", "action", "actor__username")
    ):
        if act == "signed" and facts[pk]["signer"] is None:
            facts[pk]["signer"] = actor
        elif act in ("returned", "addendum"):
            facts[pk][act] = True
    return list(facts.values())


def _report_milestones(period: Period, field: str):
    from .models import ProcedureMilestone

    _fact_cte()  # sync the milestone table first
    qs = ProcedureMilestone.objects.filter(**{f"{field}__gte": period.start, f"{field}__lt": period.end})
    if period.modality:
        qs = qs.filter(modality=period.modality)
    return qs


def fig_signed_per_radiologist(period: Period) -> Figure:
    """Reports signed in the period: per author (authored and signed) and per first signer."""
    if use_sql():
        qs = _report_milestones(period, "final")
        authored = dict(qs.values("radiologist").annotate(n=Count("pk")).values_list("radiologist", "n"))
        signed = dict(qs.values("signer").annotate(n=Count("pk")).values_list("signer", "n"))
    else:
        facts = report_facts_python(period, field="final")
        authored = Counter(f["radiologist"] for f in facts)
        signed = Counter(f["signer"] for f in facts)
    keys = {n for n in authored if n} | {n for n in signed if n}
    names = people_names(keys)
    rows = sorted(
        ([names.get(n, n), authored.get(n, 0), signed.get(n, 0)] for n in keys), key=lambda r: (-r[1], r[0])
    )
    return Figure(
        name="signed_per_radiologist",
        title=_("Reports signed per radiologist"),
        columns=[_("Radiologist"), _("Reports authored and signed"), _("Signatures given (reviewer)")],
        rows=rows,
        series_columns=[1, 2],
        horizontal=True,
    )


# ---------------------------------------------------------------------------------------
# Error statistics (差错统计)


def error_rates(period: Period) -> list[list]:
    """Per radiologist (report author): reports first signed in the period and how many of
    them received an addendum (at any time); reports first submitted in the period and how
    many of them were returned for correction."""
    if use_sql():
        signed = {
            r["radiologist"]: (r["n"], r["a"])
            for r in _report_milestones(period, "final")
            .values("radiologist")
            .annotate(n=Count("pk"), a=Count("pk", filter=Q(addendum__isnull=False)))
        }
        submitted = {
            r["radiologist"]: (r["n"], r["a"])
            for r in _report_milestones(period, "prelim")
            .values("radiologist")
            .annotate(n=Count("pk"), a=Count("pk", filter=Q(returned__isnull=False)))
        }
    else:
        signed, submitted = defaultdict(lambda: (0, 0)), defaultdict(lambda: (0, 0))
        for f in report_facts_python(period, field="final"):
            n, a = signed[f["radiologist"]]
            signed[f["radiologist"]] = (n + 1, a + int(f["addendum"]))
        for f in report_facts_python(period, field="prelim"):
            n, a = submitted[f["radiologist"]]
            submitted[f["radiologist"]] = (n + 1, a + int(f["returned"]))
    rows = []
    for name in sorted((set(signed) | set(submitted)) - {None}):
        s_n, s_a = signed.get(name, (0, 0))
        p_n, p_r = submitted.get(name, (0, 0))
        rows.append(
            [
                name,
                s_n,
                s_a,
                round(100 * s_a / s_n, 1) if s_n else None,
                p_n,
                p_r,
                round(100 * p_r / p_n, 1) if p_n else None,
            ]
        )
    return rows


def fig_error_rates(period: Period) -> Figure:
    return Figure(
        name="error_rates",
        title=_("Addendum and returned-for-correction rates per radiologist (%)"),
        columns=[
            _("Radiologist"),
            _("Signed"),
            _("With addendum"),
            _("Addendum rate %"),
            _("Submitted"),
            _("Returned"),
            _("Return rate %"),
        ],
        rows=_named(error_rates(period)),
        series_columns=[3, 6],
        unit="%",
    )


def _named(rows: list[list]) -> list[list]:
    """Rows keyed by username in column 0, labelled with the person's name."""
    names = people_names(r[0] for r in rows)
    return [[names.get(r[0], r[0]), *r[1:]] for r in rows]


PEER_SCORES = ["1", "2a", "2b", "3a", "3b"]


def fig_peer_review(period: Period) -> Figure:
    PeerReview = _model("reports", "PeerReview")
    rows: list[list] = []
    if PeerReview is not None:
        qs = PeerReview.objects.filter(scored_at__gte=period.start, scored_at__lt=period.end).exclude(
            score=""
        )
        if period.modality:
            qs = qs.filter(report__requested_procedure__procedure_type__modality=period.modality)
        counts: dict[str, Counter] = defaultdict(Counter)
        for name, score, n in (
            qs.values("radiologist__username", "score")
            .annotate(n=Count("id"))
            .values_list("radiologist__username", "score", "n")
        ):
            counts[name or "?"][score] = n
        names = people_names(counts)
        for name in sorted(counts, key=lambda n: names.get(n, n)):
            total = sum(counts[name].values())
            rows.append(
                [names.get(name, name), total]
                + [round(100 * counts[name][s] / total, 1) for s in PEER_SCORES[1:]]
                + [round(100 * sum(counts[name][s] for s in PEER_SCORES[1:]) / total, 1)]
            )
    return Figure(
        name="peer_review",
        title=_("Peer review (RADPEER) discrepancy rates per radiologist (%)"),
        columns=[_("Radiologist"), _("Scored"), "2a %", "2b %", "3a %", "3b %", _("Any discrepancy %")],
        rows=rows,
        chart_type="stacked",
        series_columns=[2, 3, 4, 5],
        unit="%",
    )


def fig_critical(period: Period, *, now=None) -> Figure:
    """Critical results by category: created in the period, notified late, open and overdue now."""
    CriticalResult = _model("reports", "CriticalResult")
    now = now or timezone.now()
    rows: list[list] = []
    if CriticalResult is not None:
        in_period = CriticalResult.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        agg = {
            r["category"]: r
            for r in in_period.values("category").annotate(
                n=Count("id"),
                late=Count("id", filter=Q(notified_at__gt=F("due_at"))),
                open_overdue=Count("id", filter=Q(notified_at__isnull=True, due_at__lt=now)),
            )
        }
        overdue_now = dict(
            CriticalResult.objects.filter(notified_at__isnull=True, due_at__lt=now)
            .values("category")
            .annotate(n=Count("id"))
            .values_list("category", "n")
        )
        for cat in ["1", "2", "3"]:
            r = agg.get(cat, {})
            rows.append(
                [_("Category %(c)s") % {"c": cat}, r.get("n", 0), r.get("late", 0), overdue_now.get(cat, 0)]
            )
    return Figure(
        name="critical_results",
        title=_("Critical results: notified late and overdue"),
        columns=[_("Category"), _("Created in period"), _("Notified late"), _("Overdue now (not notified)")],
        rows=rows,
        series_columns=[2, 3],
    )


def fig_reconciliation(period: Period) -> Figure:
    """Studies that could not be linked to an order, by the AE title that sent them."""
    Item = _model("imaging", "ReconciliationItem")
    rows: list[list] = []
    if Item is not None:
        qs = Item.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        rows = [
            [r["source_ae"] or "?", r["n"], r["open"]]
            for r in qs.values("source_ae")
            .annotate(n=Count("id"), open=Count("id", filter=Q(resolved_at__isnull=True)))
            .order_by("-n", "source_ae")
        ]
    return Figure(
        name="reconciliation",
        title=_("Reconciliation exceptions (unlinked studies) by source station"),
        columns=[_("Source AE"), _("Exceptions"), _("Still open")],
        rows=rows,
        series_columns=[1, 2],
    )


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
    from .models import MaterialItem, MaterialUsage

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
    from .models import MaterialItem

    return MaterialItem.objects.filter(active=True, stock_level__lte=F("low_stock_threshold")).order_by(
        "code"
    )
