"""ris.lifecycle: the declared table and its guarded UPDATE (shared by every lifecycle)."""

from __future__ import annotations

import pytest

from ris.errors import InvalidTransition, NotFound
from ris.lifecycle import Lifecycle, Transition
from scheduling.models import ProcedureStatus as S
from scheduling.models import RequestedProcedure
from scheduling.services import PROCEDURE_LIFECYCLE, TRANSITIONS
from tests.factories import make_order

pytestmark = pytest.mark.django_db


def _procedure(status: str, **fields) -> RequestedProcedure:
    proc = make_order().procedures.get()
    RequestedProcedure.objects.filter(pk=proc.pk).update(status=status, **fields)
    proc.refresh_from_db()
    return proc


TOY = Lifecycle(
    model=RequestedProcedure,
    name="thing",
    transitions={
        "go": Transition(sources=(S.SCHEDULED, S.ARRIVED), target=S.IN_PROGRESS),
        "stop": Transition(sources=(S.IN_PROGRESS,), target=S.COMPLETED),
    },
)


def test_a_transition_needs_a_source():
    with pytest.raises(ValueError):
        Transition(sources=(), target="x")


def test_allowed_actions_follow_the_table():
    assert TOY.allowed_actions(S.SCHEDULED) == ["go"]
    assert TOY.allowed_actions(S.IN_PROGRESS) == ["stop"]
    assert TOY.allowed_actions(S.CANCELLED) == []
    assert TOY.statuses() == {S.SCHEDULED, S.ARRIVED, S.IN_PROGRESS, S.COMPLETED}
    with pytest.raises(ValueError):
        TOY.rule("fly")


def test_advance_returns_the_true_source_and_writes_updates():
    proc = _procedure(S.ARRIVED)
    assert TOY.advance(pk=proc.pk, action="go", updates={"status_reason": "why"}) == S.ARRIVED
    proc.refresh_from_db()
    assert (proc.status, proc.status_reason) == (S.IN_PROGRESS, "why")


def test_advance_refuses_a_wrong_source_and_a_missing_row():
    proc = _procedure(S.SCHEDULED)
    with pytest.raises(InvalidTransition, match="Cannot stop a thing that is scheduled"):
        TOY.advance(pk=proc.pk, action="stop")
    with pytest.raises(NotFound):
        TOY.advance(pk=proc.pk + 10_000, action="go")
    proc.refresh_from_db()
    assert proc.status == S.SCHEDULED


def test_filters_guard_every_update():
    proc = _procedure(S.SCHEDULED, status_reason="mine")
    with pytest.raises(InvalidTransition):
        TOY.advance(pk=proc.pk, action="go", filters={"status_reason": "theirs"})
    assert TOY.advance(pk=proc.pk, action="go", filters={"status_reason": "mine"}) == S.SCHEDULED


def test_the_procedure_table_is_declared_once():
    assert PROCEDURE_LIFECYCLE.transitions is TRANSITIONS
    assert PROCEDURE_LIFECYCLE.allowed_actions(S.SCHEDULED) == ["arrive", "start", "cancel", "reschedule"]


def test_advance_takes_a_q_condition():
    from django.db.models import Q

    proc = _procedure(S.SCHEDULED, status_reason="a")
    with pytest.raises(InvalidTransition):
        TOY.advance(pk=proc.pk, action="go", where=Q(status_reason="b") | Q(status_reason="c"))
    assert (
        TOY.advance(pk=proc.pk, action="go", where=Q(status_reason="b") | Q(status_reason="a")) == S.SCHEDULED
    )
