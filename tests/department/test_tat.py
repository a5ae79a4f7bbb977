"""Turnaround figures on the hand-built history equal hand-computed medians/percentiles.

Percentiles are continuous (linear interpolation, PostgreSQL ``percentile_cont``): for sorted
values x0..x(n-1), p-th = x[k] + (x[k+1]-x[k])·f with k+f = p·(n-1).
"""

from __future__ import annotations

import pytest

from department import selectors
from department.figures import Period, percentile
from scheduling.models import ProcedureEvent
from tests.department.conftest import DAY
from tests.factories import make_order

PERIOD = Period(first=DAY, last=DAY)


def row(table, dimension="all", key=""):
    return next(r for r in table if r["dimension"] == dimension and r["key"] == key)


def minutes(r, step, stat):
    v = r[f"{step}_{stat}"]
    return None if v is None else round(v / 60, 4)


# step: (n, median, p90) in minutes, worked out by hand from the docstring of `history`.
EXPECTED_ALL = {
    # 30, 60, 60, 90, 120 (the cancelled P3 still had an appointment)
    "order_to_scheduled": (5, 60, 108),
    # -10, -10, -10, 5: arriving before the appointment takes no time (never a negative
    # turnaround): 0, 0, 0, 5
    "scheduled_to_arrived": (4, 0, 3.5),
    # 5, 15, 15, 20
    "arrived_to_started": (4, 15, 18.5),
    # 10, 20, 30 (the discontinued P4 never completes)
    "started_to_completed": (3, 20, 28),
    # 2, 10 (P5 has no images)
    "completed_to_images": (2, 6, 9.2),
    # 13, 50
    "images_to_preliminary": (2, 31.5, 46.3),
    # 15, 80, 100 (P5: first submission at 180, not the resubmission)
    "preliminary_to_final": (3, 80, 96),
    # 45, 90, 130
    "order_to_completed": (3, 90, 122),
    # 15, 50, 60
    "completed_to_preliminary": (3, 50, 58),
    # 30, 130, 160 (P2's addendum does not move its final time)
    "completed_to_final": (3, 130, 154),
    # 75, 250, 260
    "order_to_final": (3, 250, 258),
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sql", "python"])
def test_overall_turnaround_matches_hand_computation(history, path, monkeypatch):
    if path == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    table = selectors.tat_table(PERIOD)
    overall = row(table)
    assert overall["n"] == 5
    got = {
        step: (overall[f"{step}_n"], minutes(overall, step, "p50"), minutes(overall, step, "p90"))
        for step in EXPECTED_ALL
    }
    assert got == EXPECTED_ALL


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sql", "python"])
def test_turnaround_per_dimension(history, path, monkeypatch):
    if path == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    table = selectors.tat_table(PERIOD)
    ct, mr = row(table, "modality", "CT"), row(table, "modality", "MR")
    assert (ct["n"], mr["n"]) == (3, 2)
    # CT order → scheduled: 30, 60, 60 ; MR: 90, 120
    assert (minutes(ct, "order_to_scheduled", "p50"), minutes(ct, "order_to_scheduled", "p90")) == (60, 60)
    assert (minutes(mr, "order_to_scheduled", "p50"), minutes(mr, "order_to_scheduled", "p90")) == (105, 117)
    # Station dimension mirrors modality here.
    assert row(table, "station", "MRB")["n"] == 2
    stat = row(table, "priority", "STAT")
    assert (stat["completed_to_final_n"], minutes(stat, "completed_to_final", "p50")) == (1, 30)
    # rad_a: completed → final 30 and 160 ; rad_b: 130
    a, b = row(table, "radiologist", "rad_a"), row(table, "radiologist", "rad_b")
    assert (minutes(a, "completed_to_final", "p50"), minutes(a, "completed_to_final", "p90")) == (95, 147)
    assert (b["n"], minutes(b, "completed_to_final", "p50")) == (1, 130)
    # Procedures without a report form no radiologist group.
    assert {r["key"] for r in table if r["dimension"] == "radiologist"} == {"rad_a", "rad_b"}


@pytest.mark.django_db
def test_sql_and_python_paths_agree_on_every_cell(history):
    if not selectors.use_sql():
        pytest.skip("needs PostgreSQL")
    for dims in (selectors.DIMENSIONS, [], ["radiologist"], ["station", "priority"]):
        sql = selectors._tat_table_sql(PERIOD, dims, selectors.STEPS)
        py = selectors.tat_table_from_milestones(selectors.milestones_python(PERIOD), dimensions=dims)
        assert [(r["dimension"], r["key"]) for r in sql] == [(r["dimension"], r["key"]) for r in py]
        assert len(sql) == 1 + sum(
            len({r[d] for r in selectors.milestones_python(PERIOD) if r[d]}) for d in dims
        )
        for a, b in zip(sql, py, strict=True):
            for k, v in a.items():
                assert v == pytest.approx(b[k]), (dims, a["dimension"], a["key"], k)


@pytest.mark.django_db
def test_turnaround_is_cached_briefly(history, settings):
    if not selectors.use_sql():
        pytest.skip("the cache wraps the SQL path")
    settings.RIS_DASHBOARD_CACHE_SECONDS = 60
    from django.core.cache import cache

    cache.clear()
    first = selectors.tat_table(PERIOD, dimensions=[])
    # New events after the first read are not seen until the cache expires …
    from scheduling import services
    from tests.department.conftest import at

    p4 = history["procedures"][3]
    base = ProcedureEvent.objects.get(requested_procedure=p4, action="order").at
    extra = make_order(
        station=history["stations"][1], procedure_type=p4.procedure_type, start=at(base, 200), ordered_at=base
    ).procedures.get()
    services.procedure_mark_arrived(procedure=extra, at=at(base, 190))
    services.procedure_start(procedure=extra, at=at(base, 200))
    services.procedure_complete(procedure=extra, at=at(base, 210))
    assert selectors.tat_table(PERIOD, dimensions=[]) == first
    cache.clear()
    assert row(selectors.tat_table(PERIOD, dimensions=[]))["started_to_completed_n"] == 4


@pytest.mark.django_db
def test_period_and_modality_filter(history):
    assert row(selectors.tat_table(Period(first=DAY, last=DAY, modality="MR")))["n"] == 2
    from datetime import timedelta

    other = Period(first=DAY + timedelta(days=1), last=DAY + timedelta(days=2))
    empty = row(selectors.tat_table(other))
    assert empty["n"] == 0
    assert empty.get("order_to_final_p50") is None


@pytest.mark.django_db
def test_compliance_against_targets(history, settings):
    settings.RIS_TAT_TARGETS = {
        "STAT": {"order_to_completed": 60, "completed_to_final": 20},
        "ROUTINE": {"completed_to_final": 150},
    }
    rows = selectors.tat_compliance(PERIOD)
    # [priority, step, target, n, within, %]
    assert rows == [
        ["STAT", "completed → final", 20, 1, 0, 0.0],  # 30 min > 20
        ["STAT", "order → completed", 60, 1, 1, 100.0],  # 45 min
        ["ROUTINE", "completed → final", 150, 2, 1, 50.0],  # 160 no, 130 yes
    ]


def test_percentile_is_percentile_cont():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 20, 30], 0.9) == pytest.approx(28)


@pytest.mark.django_db
def test_milestone_table_follows_new_events(history, monkeypatch):
    if not selectors.use_sql():
        pytest.skip("the milestone table is the PostgreSQL path")
    from datetime import timedelta

    from department.models import MilestoneSyncState, ProcedureMilestone
    from department.services import milestones_rebuild, milestones_sync
    from scheduling.models import ProcedureEvent

    assert row(selectors.tat_table(PERIOD, dimensions=[]))["completed_to_images_n"] == 2
    assert ProcedureMilestone.objects.count() == 5
    p5 = history["procedures"][4]
    done = ProcedureEvent.objects.get(requested_procedure=p5, action="complete").at
    ProcedureEvent.objects.create(
        requested_procedure=p5,
        action="images_available",
        from_status="completed",
        to_status="completed",
        at=done + timedelta(minutes=4),
        source="ingest",
    )
    # The backstop folds the new event in: only the procedures of events above the settled
    # marks are recomputed (this one), and a second run with nothing new does nothing.
    assert milestones_sync() == 1
    assert milestones_sync() == 0
    overall = row(selectors.tat_table(PERIOD, dimensions=[]))
    assert (overall["completed_to_images_n"], minutes(overall, "completed_to_images", "p50")) == (3, 4)
    m = ProcedureMilestone.objects.get(procedure=p5)
    assert m.images == done + timedelta(minutes=4) and m.radiologist == "rad_b" and m.station == "MRB"
    # A rebuild recomputes everything and records the marks.
    ProcedureMilestone.objects.all().delete()
    assert milestones_rebuild(chunk=2) == 5
    assert MilestoneSyncState.objects.get().procedure_event_id == ProcedureEvent.objects.latest("id").id
    assert row(selectors.tat_table(PERIOD, dimensions=[]))["completed_to_images_n"] == 3


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sql", "python"])
def test_weekly_trend(history, path, monkeypatch):
    if path == "python":
        monkeypatch.setattr(selectors, "use_sql", lambda: False)
    elif not selectors.use_sql():
        pytest.skip("PostgreSQL path")
    from datetime import timedelta

    two_weeks = Period(first=DAY - timedelta(days=2), last=DAY + timedelta(days=8))
    step = selectors.STEP_BY_KEY["completed_to_final"]
    rows = [
        [wk, n, None if a is None else a / 60, None if b is None else round(b / 60, 4)]
        for wk, n, a, b in selectors.tat_trend(two_weeks, step)
    ]
    # DAY is a Monday: the week before (empty), DAY's week (30, 130, 160 min), the next (empty).
    assert rows == [
        [DAY - timedelta(days=7), 0, None, None],
        [DAY, 3, 130, 154],
        [DAY + timedelta(days=7), 0, None, None],
    ]
