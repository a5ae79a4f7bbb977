"""The milestones of each procedure: the SQL that builds ``ProcedureMilestone`` and its ORM twin."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Min

from reports.models import ReportEvent
from scheduling.models import (
    ProcedureEvent,
    RequestedProcedure,
    ScheduledProcedureStep,
)

from ..figures import Period
from .base import (
    MILESTONES,
)

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
    pieces, joins, select = [], [], ["p.id"]
    for col in columns:
        need, expr, join = _COLUMNS[col]
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
    for rpk, author, raction, rat in ReportEvent.objects.filter(
        report__requested_procedure_id__in=ids, action__in=["submitted", "signed"]
    ).values_list("report__requested_procedure_id", "report__author__username", "action", "at"):
        rows[int(rpk)]["radiologist"] = author
        key = "prelim" if raction == "submitted" else "final"
        if rows[int(rpk)][key] is None or rat < rows[int(rpk)][key]:
            rows[int(rpk)][key] = rat
    return list(rows.values())
