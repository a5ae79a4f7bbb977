"""Every figure by name: the pages, the CSV export and the REST API all look them up here."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.db import connection, transaction

from . import selectors as s
from .figures import Figure, Period

FigureFn = Callable[..., Figure]

FIGURES: dict[str, FigureFn] = {
    # Turnaround (科室信息报表)
    "tat_steps": s.fig_tat_chain,
    "tat_compliance": s.fig_compliance,
    "tat_trend": s.fig_tat_trend,
    "tat_by_modality": partial(s.fig_tat_by, dimension="modality"),
    "tat_by_station": partial(s.fig_tat_by, dimension="station"),
    "tat_by_priority": partial(s.fig_tat_by, dimension="priority"),
    "tat_by_radiologist": partial(s.fig_tat_by, dimension="radiologist"),
    "backlog": s.fig_backlog,
    "cancellations": s.fig_cancellations,
    # Volumes and workload
    "volume_modality_day": partial(s.fig_volume, by="day", per="modality"),
    "volume_modality_week": partial(s.fig_volume, by="week", per="modality"),
    "volume_station_day": partial(s.fig_volume, by="day", per="station"),
    "volume_station_week": partial(s.fig_volume, by="week", per="station"),
    "utilisation": s.fig_utilisation,
    "signed_per_radiologist": s.fig_signed_per_radiologist,
    # Error statistics (差错统计)
    "error_rates": s.fig_error_rates,
    "peer_review": s.fig_peer_review,
    "critical_results": s.fig_critical,
    "reconciliation": s.fig_reconciliation,
    # Materials (放射物资管理)
    "materials": s.fig_materials,
}

# Figures that accept ?step=<step key> (which turnaround step to break down).
STEP_FIGURES = {"tat_by_modality", "tat_by_station", "tat_by_priority", "tat_by_radiologist", "tat_trend"}

# Which figures each page shows, in order.
PAGES = {
    "dashboard": ["tat_steps", "volume_modality_day", "backlog", "tat_compliance", "cancellations"],
    "turnaround": [
        "tat_steps",
        "tat_trend",
        "tat_by_modality",
        "tat_by_station",
        "tat_by_priority",
        "tat_by_radiologist",
        "tat_compliance",
    ],
    "workload": [
        "volume_modality_week",
        "volume_station_day",
        "utilisation",
        "signed_per_radiologist",
    ],
    "quality": ["error_rates", "peer_review", "critical_results", "reconciliation"],
    "equipment": ["utilisation"],
    "materials": ["materials"],
}


def build(name: str, period: Period, params=None) -> Figure:
    fn = FIGURES[name]
    kwargs = {}
    if name in STEP_FIGURES and params is not None and params.get("step") in s.STEP_BY_KEY:
        kwargs["step_key"] = params.get("step")
    if connection.vendor != "postgresql":
        # SQLite runs read-only here; a transaction would take its (IMMEDIATE) write lock.
        return fn(period, **kwargs)
    with transaction.atomic(), connection.cursor() as cur:
        # These aggregates are costed above PostgreSQL's JIT threshold at a million rows,
        # yet run in tens of milliseconds: compiling them would cost more than it saves.
        cur.execute("SET LOCAL jit = off")
        # Room to hash and sort a month of procedures in memory rather than on disk.
        cur.execute("SET LOCAL work_mem = '64MB'")
        return fn(period, **kwargs)
