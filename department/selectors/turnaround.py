"""Turnaround tables and figures (chain, per dimension, trend, compliance) and the reading backlog."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from scheduling.models import (
    PRIORITY_RANK,
    ProcedureStatus,
    RequestedProcedure,
)

from ..figures import Figure, Period, percentile
from ..models import ProcedureMilestone
from .base import (
    BACKLOG_BUCKETS,
    DIMENSION_LABELS,
    DIMENSIONS,
    STEP_BY_KEY,
    STEP_LABELS,
    STEPS,
    Step,
    _cached,
    _duration_figure,
    _f,
    people_names,
    sql_path,
    tat_targets,
)
from .milestones import (
    _FACT,
    _params,
    milestones_python,
)


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
    if sql_path():
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
        cur.execute(_FACT + select, _params(period))
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
    if sql_path():
        d_expr = step.sql()
        # The step's columns come from the constant STEPS table; values are parameters.
        select = (
            f"SELECT (date_trunc('week', m.ordered AT TIME ZONE %(tz)s))::date AS wk, count({d_expr}), "  # noqa: S608
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {d_expr}) FROM m GROUP BY 1"
        )
        params = _params(period) | {"tz": timezone.get_current_timezone_name()}

        def compute():
            with connection.cursor() as cur:
                cur.execute(_FACT + select, params)
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
    if sql_path():
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
        cur.execute(_FACT + " UNION ALL ".join(parts), params)
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
    if sql_path():
        return _backlog_sql(now, window)
    qs = RequestedProcedure.objects.filter(
        status=ProcedureStatus.COMPLETED, ended_at__gte=now - timedelta(days=window), ended_at__lte=now
    )
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
