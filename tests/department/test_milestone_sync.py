"""The milestone table follows the event logs without any read writing it.

Transitions refresh their procedure's row when they commit (signal receivers); the periodic
backstop catches what no signal announced, including an event committed late (an id below
ids already synced); the dashboards only read.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from department import registry, tasks
from department.figures import Period
from department.models import MilestoneSyncState, ProcedureMilestone
from department.services import milestones_rebuild, milestones_sync
from reports import services as reports_services
from ris.roles import Role
from scheduling import services
from scheduling.models import ProcedureEvent
from tests.department.conftest import DAY
from tests.factories import make_order
from tests.reports.conftest import PASSWORD

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the milestone table is the PostgreSQL path"
)

WRITES = ("INSERT", "UPDATE", "DELETE", "SELECT PG_ADVISORY")


def _writes(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


@pytest.mark.django_db
def test_a_transition_updates_the_milestone_row_without_any_read(
    real_milestone_receivers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        proc = make_order().procedures.get()
    m = ProcedureMilestone.objects.get(procedure_id=proc.pk)
    assert m.ordered is not None and m.started is None
    with django_capture_on_commit_callbacks(execute=True):
        services.procedure_start(procedure=proc)
    assert ProcedureMilestone.objects.get(procedure_id=proc.pk).started is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.procedure_complete(procedure=proc)
    m = ProcedureMilestone.objects.get(procedure_id=proc.pk)
    assert m.completed is not None and m.ended == m.completed


@pytest.mark.django_db
def test_nothing_happens_before_commit(real_milestone_receivers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        proc = make_order().procedures.get()
    assert not ProcedureMilestone.objects.filter(procedure_id=proc.pk).exists()
    for cb in callbacks:
        cb()
    assert ProcedureMilestone.objects.filter(procedure_id=proc.pk).exists()


@pytest.mark.django_db
def test_a_report_transition_updates_the_milestone_row(
    real_milestone_receivers, users, django_capture_on_commit_callbacks
):
    rad, rev = users["radiologist"], users["reviewer"]
    with django_capture_on_commit_callbacks(execute=True):
        exam = make_order().procedures.get()
        services.procedure_start(procedure=exam)
        services.procedure_complete(procedure=exam)
        services.procedure_images_available(procedure=exam, at=timezone.now())
        report = reports_services.report_claim(procedure=exam, actor=rad)
        report = reports_services.report_save_draft(report=report, actor=rad, findings="x", impression="y")
    with django_capture_on_commit_callbacks(execute=True):
        reports_services.report_submit(report=report, actor=rad)
    m = ProcedureMilestone.objects.get(procedure_id=exam.pk)
    assert m.prelim is not None and m.final is None and m.radiologist == rad.username
    with django_capture_on_commit_callbacks(execute=True):
        reports_services.report_sign(report=report, actor=rev, password=PASSWORD)
    m = ProcedureMilestone.objects.get(procedure_id=exam.pk)
    assert m.final is not None and m.signer == rev.username


@pytest.mark.django_db
def test_a_failing_refresh_does_not_fail_the_committed_transition(
    real_milestone_receivers, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from django.db import DatabaseError

    def broken(**kwargs):
        raise DatabaseError("boom")

    monkeypatch.setattr("department.services.milestones_refresh", broken)
    with django_capture_on_commit_callbacks(execute=True):
        proc = make_order().procedures.get()
    assert ProcedureEvent.objects.filter(requested_procedure=proc, action="order").exists()
    assert "periodic sync will catch up" in caplog.text


@pytest.mark.django_db
def test_dashboard_reads_perform_no_write(history, client_for):
    period = Period(first=DAY, last=DAY)
    with CaptureQueriesContext(connection) as ctx:
        for name in registry.FIGURES:
            registry.build(name, period)
    assert ctx.captured_queries, "the figures ran queries"
    assert _writes(ctx) == []
    # The pages too: whatever else a request writes (session, audit), never the milestone table.
    c = client_for(Role.DEPT_HEAD)
    for name in registry.PAGES:
        with CaptureQueriesContext(connection) as ctx:
            page = c.get(reverse(f"department:{name}"), {"from": DAY.isoformat(), "to": DAY.isoformat()})
        assert page.status_code == 200
        assert [q for q in _writes(ctx) if "department_" in q] == []


def _commit_late(proc_id: int, inserted: threading.Event, release: threading.Event, out: dict) -> None:
    """In its own connection: insert an event, hold the transaction open, commit when told."""
    from django.db import transaction

    try:
        with transaction.atomic():
            e = ProcedureEvent.objects.create(
                requested_procedure_id=proc_id,
                action="images_available",
                from_status="completed",
                to_status="completed",
                at=timezone.now(),
                source="ingest",
            )
            out["id"] = e.pk
            inserted.set()
            if not release.wait(timeout=120):
                raise RuntimeError("never released")
    except Exception as exc:  # reported to the test
        out["error"] = exc
        inserted.set()
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_still_picked_up_by_the_backstop(real_milestone_receivers):
    # Autocommit: the receivers fire at once, as in production.
    late, other = (make_order().procedures.get() for _ in range(2))
    for p in (late, other):
        services.procedure_start(procedure=p)
        services.procedure_complete(procedure=p)
    milestones_sync()
    inserted, release, out = threading.Event(), threading.Event(), {}
    t = threading.Thread(target=_commit_late, args=(late.pk, inserted, release, out), daemon=True)
    t.start()
    try:
        assert inserted.wait(timeout=120) and "error" not in out, out
        # A higher id commits first (no signal: an ingest event on a completed exam) and is synced.
        ProcedureEvent.objects.create(
            requested_procedure=other,
            action="images_available",
            from_status="completed",
            to_status="completed",
            at=timezone.now(),
            source="ingest",
        )
        assert milestones_sync() == 1
        state = MilestoneSyncState.objects.get()
        assert state.procedure_event_id > out["id"]  # synced past the still-uncommitted event
        assert ProcedureMilestone.objects.get(procedure_id=other.pk).images is not None
        assert ProcedureMilestone.objects.get(procedure_id=late.pk).images is None
    finally:
        release.set()
        t.join(timeout=120)
    assert not t.is_alive() and "error" not in out, out
    # The late event (an id below the mark) is found by the next backstop run; no read involved.
    assert milestones_sync() >= 1
    assert ProcedureMilestone.objects.get(procedure_id=late.pk).images is not None
    assert milestones_sync() == 0


@pytest.mark.django_db
def test_settled_marks_move_up_only_after_the_settle_time(real_milestone_receivers):
    make_order()
    milestones_rebuild()
    state = MilestoneSyncState.objects.get()
    first = state.settled_procedure_event_id
    make_order()
    milestones_sync()
    assert MilestoneSyncState.objects.get().settled_procedure_event_id == first
    later = timezone.now() + timedelta(seconds=settings.RIS_MILESTONE_SETTLE_SECONDS + 1)
    milestones_sync(now=later)
    state = MilestoneSyncState.objects.get()
    # Settled to the marks seen one settle time ago; the newest ids are the next pending ones.
    assert state.settled_procedure_event_id == first
    assert state.pending_procedure_event_id == ProcedureEvent.objects.latest("id").pk
    milestones_sync(now=later + timedelta(seconds=settings.RIS_MILESTONE_SETTLE_SECONDS + 1))
    state = MilestoneSyncState.objects.get()
    assert state.settled_procedure_event_id == ProcedureEvent.objects.latest("id").pk


@pytest.mark.django_db
@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_the_backstop_is_a_scheduled_single_run_task(real_milestone_receivers):
    entry = settings.CELERY_BEAT_SCHEDULE["department-milestones-sync"]
    assert entry["task"] == tasks.milestones_sync.name == "department.milestones_sync"
    assert entry["schedule"] == settings.RIS_MILESTONE_SYNC_SECONDS
    make_order()
    assert tasks.milestones_sync.apply().get() == 1  # never built: a rebuild
    assert tasks.milestones_sync.apply().get() == 0
