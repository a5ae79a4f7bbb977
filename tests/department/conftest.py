"""A hand-built event history with hand-computed turnaround figures (see test_tat.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from reports.models import Report, ReportEvent
from scheduling import services
from scheduling.models import ProcedureEvent
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, UserFactory, make_order

DAY = date(2026, 1, 5)


@pytest.fixture(autouse=True)
def _no_dashboard_cache(settings):
    # Each test builds its own history; a cached figure from another test would be wrong.
    settings.RIS_DASHBOARD_CACHE_SECONDS = 0
    # Labels are checked in English; a request in Chinese must not leak into the next test.
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _milestones_follow_events(request):
    """Stand-in for the on-commit receivers inside a test's transaction.

    These tests build histories inside one transaction that never commits, and often write
    event rows directly, so neither ``transaction.on_commit`` nor the transition signals fire.
    In production the receivers refresh a procedure after its transition commits and the
    backstop sync catches direct writes; here every event row refreshes its procedure at once.
    Tests of the real receivers and backstop ask for ``real_milestone_receivers`` instead.
    """
    if "real_milestone_receivers" in request.fixturenames:
        yield
        return
    from django.db.models.signals import post_save

    from department.services import milestones_refresh

    def procedure_event(sender, instance, created, **kwargs):
        milestones_refresh(procedure_ids=[instance.requested_procedure_id])

    def report_event(sender, instance, created, **kwargs):
        milestones_refresh(procedure_ids=[instance.report.requested_procedure_id])

    post_save.connect(procedure_event, sender=ProcedureEvent, dispatch_uid="test.milestones.pe")
    post_save.connect(report_event, sender=ReportEvent, dispatch_uid="test.milestones.re")
    try:
        yield
    finally:
        post_save.disconnect(dispatch_uid="test.milestones.pe", sender=ProcedureEvent)
        post_save.disconnect(dispatch_uid="test.milestones.re", sender=ReportEvent)


@pytest.fixture
def real_milestone_receivers():
    """Opt out of ``_milestones_follow_events``: only the production receivers and backstop."""


def at(base: datetime, minutes: float) -> datetime:
    return base + timedelta(minutes=minutes)


@pytest.fixture
def history(db):
    """Five procedures ordered on DAY (minutes after each order):

    P1 CT STAT     sched 30, arrive 20, start 35, complete 45, images 47, prelim 60, final 75
    P2 CT ROUTINE  sched 60, arrive 50, start 70, complete 90, images 100, prelim 150, final 250,
                   addendum 400 (amended: final stays at 250)
    P3 CT ROUTINE  sched 60, cancelled ("patient request")
    P4 MR ROUTINE  sched 120, arrive 110, start 125, discontinued 140
    P5 MR ROUTINE  sched 90, arrive 95, start 100, complete 130, no images,
                   prelim 180, returned 190, prelim again 200, final 260
    Radiologists: rad_a wrote P1 and P2, rad_b wrote P5; rev signed all.
    """
    tz = timezone.get_current_timezone()
    t0 = datetime.combine(DAY, time(6, 0), tzinfo=tz)
    ct, mr = StationFactory(ae_title="CTA", modality="CT"), StationFactory(ae_title="MRB", modality="MR")
    ct_pt, mr_pt = ProcedureTypeFactory(modality="CT"), ProcedureTypeFactory(modality="MR")
    rad_a, rad_b = UserFactory(username="rad_a"), UserFactory(username="rad_b")
    rev = UserFactory(username="rev")
    patient = PatientFactory()

    def order(i, station, pt, sched, priority="ROUTINE"):
        base = t0 + timedelta(hours=3 * i)
        proc = make_order(
            patient=patient,
            station=station,
            procedure_type=pt,
            start=at(base, sched),
            priority=priority,
            ordered_at=base,
        ).procedures.get()
        return proc, base

    def report(proc, author, events):
        r = Report.objects.create(requested_procedure=proc, author=author, status="final")
        for action, t, actor in events:
            ReportEvent.objects.create(report=r, action=action, at=t, actor=actor)
        return r

    def images(proc, t):
        ProcedureEvent.objects.create(
            requested_procedure=proc,
            action="images_available",
            from_status="completed",
            to_status="completed",
            at=t,
            source="ingest",
        )

    p1, b1 = order(0, ct, ct_pt, 30, "STAT")
    services.procedure_mark_arrived(procedure=p1, at=at(b1, 20))
    services.procedure_start(procedure=p1, at=at(b1, 35))
    services.procedure_complete(procedure=p1, at=at(b1, 45))
    images(p1, at(b1, 47))
    report(p1, rad_a, [("submitted", at(b1, 60), rad_a), ("signed", at(b1, 75), rev)])

    p2, b2 = order(1, ct, ct_pt, 60)
    services.procedure_mark_arrived(procedure=p2, at=at(b2, 50))
    services.procedure_start(procedure=p2, at=at(b2, 70))
    services.procedure_complete(procedure=p2, at=at(b2, 90))
    images(p2, at(b2, 100))
    report(
        p2,
        rad_a,
        [("submitted", at(b2, 150), rad_a), ("signed", at(b2, 250), rev), ("addendum", at(b2, 400), rad_a)],
    )

    p3, _b3 = order(2, ct, ct_pt, 60)
    services.procedure_cancel(procedure=p3, reason="patient request")

    p4, b4 = order(3, mr, mr_pt, 120)
    services.procedure_mark_arrived(procedure=p4, at=at(b4, 110))
    services.procedure_start(procedure=p4, at=at(b4, 125))
    services.procedure_discontinue(procedure=p4, reason="claustrophobia", at=at(b4, 140))

    p5, b5 = order(4, mr, mr_pt, 90)
    services.procedure_mark_arrived(procedure=p5, at=at(b5, 95))
    services.procedure_start(procedure=p5, at=at(b5, 100))
    services.procedure_complete(procedure=p5, at=at(b5, 130))
    report(
        p5,
        rad_b,
        [
            ("submitted", at(b5, 180), rad_b),
            ("returned", at(b5, 190), rev),
            ("submitted", at(b5, 200), rad_b),
            ("signed", at(b5, 260), rev),
        ],
    )
    # The periodic backstop has run since (it records where the logs stand).
    from department.services import milestones_sync

    milestones_sync()
    return {"procedures": [p1, p2, p3, p4, p5], "stations": (ct, mr)}
