"""Reads for the department dashboards (科室信息报表, 差错统计, 设备, 物资), one module per topic.

    base        steps, labels, targets, units, the short cache, people's names, ``use_sql``
    milestones  the SQL that builds ``ProcedureMilestone`` and its ORM twin (``milestones_python``)
    turnaround  turnaround tables and figures, compliance, the reading backlog
    activity    cancellations, no-shows, volume, station utilisation
    reporting   signed per radiologist, error rates, peer review, critical results, reconciliation
    resources   equipment status and downtime, materials

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

On PostgreSQL the milestones are kept in ``department.ProcedureMilestone`` and every figure is
one SQL aggregate over it (``percentile_cont`` with ``GROUPING SETS``). The table is written
only by ``department.services`` (on the procedure/report signals and by the periodic backstop
``milestones_sync``): no read here writes. On SQLite (the embedded demo) the same milestones
are read from the logs with the ORM and aggregated in Python. Tests run both paths on one
hand-built history and require the same numbers.

Every name of the modules is re-exported here, so ``from department.selectors import X`` and
``department.selectors.X`` keep working; the modules ask ``sql_path()``, which reads
``department.selectors.use_sql``, so swapping that one attribute switches every figure.
"""

from .activity import (
    NO_SHOW_REASONS,
    _overlap_working_minutes,
    _performed_minutes,
    _volume_figure,
    fig_cancellations,
    fig_utilisation,
    fig_volume,
    is_no_show_reason,
    no_show_count,
    station_utilisation,
)
from .base import (
    BACKLOG_BUCKETS,
    BUCKET_LABELS,
    CACHE_SECONDS_DEFAULT,
    DEFAULT_TAT_TARGETS,
    DIMENSION_LABELS,
    DIMENSIONS,
    MILESTONES,
    NO_SHOW_GRACE,
    STEP_BY_KEY,
    STEP_LABELS,
    STEPS,
    UNIT_SECONDS,
    UNIT_SYMBOLS,
    UNIT_WORDS,
    Step,
    _cached,
    _duration_figure,
    _f,
    _in_unit,
    duration_unit,
    people_names,
    sql_path,
    tat_targets,
    use_sql,
)
from .milestones import (
    _COLUMNS,
    _FACT,
    _JOINS,
    _P,
    _P_FILTERS,
    _PE,
    _RE,
    _ST,
    _milestone_cte,
    _params,
    milestones_python,
)
from .reporting import (
    PEER_SCORES,
    _named,
    _report_milestones,
    error_rates,
    fig_critical,
    fig_error_rates,
    fig_peer_review,
    fig_reconciliation,
    fig_signed_per_radiologist,
    report_facts_python,
)
from .resources import downtime_list, fig_materials, material_low_stock, station_status_list
from .turnaround import (
    _backlog_sql,
    _compliance_counts_python,
    _compliance_rows,
    _compliance_sql,
    _prio_rank,
    _seconds,
    _sort_tat,
    _tat_table_sql,
    backlog,
    fig_backlog,
    fig_compliance,
    fig_tat_by,
    fig_tat_chain,
    fig_tat_trend,
    tat_compliance,
    tat_table,
    tat_table_from_milestones,
    tat_trend,
)

__all__ = [
    "BACKLOG_BUCKETS",
    "BUCKET_LABELS",
    "CACHE_SECONDS_DEFAULT",
    "DEFAULT_TAT_TARGETS",
    "DIMENSIONS",
    "DIMENSION_LABELS",
    "MILESTONES",
    "NO_SHOW_GRACE",
    "NO_SHOW_REASONS",
    "PEER_SCORES",
    "STEPS",
    "STEP_BY_KEY",
    "STEP_LABELS",
    "UNIT_SECONDS",
    "UNIT_SYMBOLS",
    "UNIT_WORDS",
    "_COLUMNS",
    "_FACT",
    "_JOINS",
    "_P",
    "_PE",
    "_P_FILTERS",
    "_RE",
    "_ST",
    "Step",
    "_backlog_sql",
    "_cached",
    "_compliance_counts_python",
    "_compliance_rows",
    "_compliance_sql",
    "_duration_figure",
    "_f",
    "_in_unit",
    "_milestone_cte",
    "_named",
    "_overlap_working_minutes",
    "_params",
    "_performed_minutes",
    "_prio_rank",
    "_report_milestones",
    "_seconds",
    "_sort_tat",
    "_tat_table_sql",
    "_volume_figure",
    "backlog",
    "downtime_list",
    "duration_unit",
    "error_rates",
    "fig_backlog",
    "fig_cancellations",
    "fig_compliance",
    "fig_critical",
    "fig_error_rates",
    "fig_materials",
    "fig_peer_review",
    "fig_reconciliation",
    "fig_signed_per_radiologist",
    "fig_tat_by",
    "fig_tat_chain",
    "fig_tat_trend",
    "fig_utilisation",
    "fig_volume",
    "is_no_show_reason",
    "material_low_stock",
    "milestones_python",
    "no_show_count",
    "people_names",
    "report_facts_python",
    "sql_path",
    "station_status_list",
    "station_utilisation",
    "tat_compliance",
    "tat_table",
    "tat_table_from_milestones",
    "tat_targets",
    "tat_trend",
    "use_sql",
]
