"""The procedure state machine: every allowed and every forbidden transition."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from ris.errors import ApplicationError, InvalidTransition
from scheduling import services
from scheduling.models import ProcedureEvent, ProcedureStatus, RequestedProcedure, SPSStatus
from scheduling.services import TRANSITIONS
from tests.factories import make_order, next_slot

S = ProcedureStatus
ALL_STATUSES = list(S.values)

ACTIONS = {
    "arrive": lambda p: services.procedure_mark_arrived(procedure=p),
    "start": lambda p: services.procedure_start(procedure=p),
    "complete": lambda p: services.procedure_complete(procedure=p),
    "discontinue": lambda p: services.procedure_discontinue(procedure=p, reason="patient unwell"),
    "cancel": lambda p: services.procedure_cancel(procedure=p, reason="patient request"),
    "reschedule": lambda p: services.procedure_reschedule(procedure=p, start=next_slot(240), reason="clash"),
}

EXPECTED_SPS = {
    S.SCHEDULED: SPSStatus.SCHEDULED,
    S.ARRIVED: SPSStatus.ARRIVED,
    S.IN_PROGRESS: SPSStatus.STARTED,
    S.COMPLETED: SPSStatus.COMPLETED,
    S.DISCONTINUED: SPSStatus.DISCONTINUED,
    S.CANCELLED: SPSStatus.CANCELED,
}


def _procedure_in(status: str) -> RequestedProcedure:
    proc = make_order().procedures.get()
    RequestedProcedure.objects.filter(pk=proc.pk).update(status=status)
    proc.refresh_from_db()
    return proc


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_transition_table(action, status):
    proc = _procedure_in(status)
    rule = TRANSITIONS[action]
    events_before = ProcedureEvent.objects.filter(requested_procedure=proc).count()
    if status in rule.sources:
        ACTIONS[action](proc)
        proc.refresh_from_db()
        assert proc.status == rule.target
        event = ProcedureEvent.objects.filter(requested_procedure=proc).latest("id")
        assert (event.action, event.from_status, event.to_status) == (action, status, rule.target)
        assert proc.steps.get().status == EXPECTED_SPS[rule.target]
        assert AuditEvent.objects.filter(action=f"procedure.{action}", object_id=str(proc.pk)).count() == 1
    else:
        with pytest.raises(InvalidTransition):
            ACTIONS[action](proc)
        proc.refresh_from_db()
        assert proc.status == status
        assert ProcedureEvent.objects.filter(requested_procedure=proc).count() == events_before


@pytest.mark.django_db
def test_full_happy_path_records_each_step():
    proc = make_order().procedures.get()
    services.procedure_mark_arrived(procedure=proc)
    services.procedure_start(procedure=proc)
    services.procedure_complete(procedure=proc)
    steps = list(ProcedureEvent.objects.filter(requested_procedure=proc).values_list("action", "to_status"))
    assert steps == [
        ("order", "scheduled"),
        ("arrive", "arrived"),
        ("start", "in_progress"),
        ("complete", "completed"),
    ]
    proc.refresh_from_db()
    assert proc.arrived_at and proc.started_at and proc.ended_at


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["cancel", "discontinue", "reschedule"])
def test_reason_required(action):
    proc = _procedure_in(TRANSITIONS[action].sources[0])
    with pytest.raises(ApplicationError) as err:
        services._transition(procedure=proc, action=action, reason="  ")
    assert "reason" in err.value.fields


@pytest.mark.django_db
def test_reschedule_moves_the_step_and_frees_the_slot():
    order = make_order()
    proc = order.procedures.get()
    step = proc.steps.get()
    old_start = step.start
    services.procedure_reschedule(procedure=proc, start=next_slot(300), reason="patient asked")
    step.refresh_from_db()
    assert step.start == next_slot(300)
    # The old slot is bookable again.
    make_order(station=step.station, procedure_type=proc.procedure_type, start=old_start)


@pytest.mark.django_db
def test_side_effect_signal_runs_on_commit_only(django_capture_on_commit_callbacks):
    from scheduling.signals import procedure_transitioned

    seen = []

    def receiver(**kwargs):
        seen.append((kwargs["action"], kwargs["to_status"]))

    procedure_transitioned.connect(receiver)
    try:
        proc = make_order().procedures.get()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.procedure_mark_arrived(procedure=proc)
        assert seen == []
        for cb in callbacks:
            cb()
        assert seen == [("arrive", "arrived")]
    finally:
        procedure_transitioned.disconnect(receiver)


RACES = {
    # Both sides are allowed from the start state and neither is allowed after the other.
    "arrive-arrive": (
        lambda pk: services.procedure_mark_arrived(procedure=pk),
        lambda pk: services.procedure_mark_arrived(procedure=pk),
    ),
    "start-cancel": (
        lambda pk: services.procedure_start(procedure=pk),
        lambda pk: services.procedure_cancel(procedure=pk, reason="x"),
    ),
    "complete-discontinue": (
        lambda pk: services.procedure_complete(procedure=pk),
        lambda pk: services.procedure_discontinue(procedure=pk, reason="x"),
    ),
}


def _race(fns, pk) -> list[str]:
    from django.db import connections

    barrier = threading.Barrier(len(fns))
    results: list[str] = []

    def worker(fn):
        try:
            barrier.wait()
            fn(pk)
            results.append("ok")
        except InvalidTransition:
            results.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.parametrize("race", list(RACES))
def test_concurrent_transitions_exactly_one_wins(race):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    for minutes in (0, 60, 120):  # a few rounds, each on a fresh procedure
        proc = make_order(start=next_slot(minutes)).procedures.get()
        if race == "complete-discontinue":
            services.procedure_start(procedure=proc)
        before = ProcedureEvent.objects.filter(requested_procedure=proc).count()
        assert _race(RACES[race], proc.pk) == ["conflict", "ok"]
        assert ProcedureEvent.objects.filter(requested_procedure=proc).count() == before + 1
