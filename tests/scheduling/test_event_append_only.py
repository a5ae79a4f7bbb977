"""ProcedureEvent and ReportEvent are append-only (issue 9 item 14): raw SQL and the ORM are refused."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.db.utils import DatabaseError
from django.utils import timezone

from reports.models import Report, ReportEvent
from ris.append_only import AppendOnlyError
from scheduling.models import ProcedureEvent
from tests.factories import UserFactory, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    actor = UserFactory()
    proc = make_order(actor=actor).procedures.get()
    pe = ProcedureEvent.objects.get(requested_procedure=proc, action="order")
    report = Report.objects.create(requested_procedure=proc, author=actor)
    re = ReportEvent.objects.create(report=report, action="created", at=timezone.now(), actor=actor)
    return {"procedure": pe, "report": re, "actor": actor, "proc": proc}


@pytest.mark.parametrize("which", ["procedure", "report"])
@pytest.mark.parametrize(
    "sql",
    ["UPDATE {t} SET at = at - interval '1 hour' WHERE id = %s", "DELETE FROM {t} WHERE id = %s"],
)
def test_raw_sql_cannot_change_an_event(events, which, sql):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    ev = events[which]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql.format(t=type(ev)._meta.db_table), [ev.pk])
    assert type(ev).objects.filter(pk=ev.pk, at=ev.at).exists()


@pytest.mark.parametrize("which", ["procedure", "report"])
def test_orm_refuses_save_update_delete(events, which):
    ev = events[which]
    model = type(ev)
    ev.detail = {"tampered": True}
    with pytest.raises(AppendOnlyError):
        ev.save()
    with pytest.raises(AppendOnlyError):
        ev.delete()
    with pytest.raises(AppendOnlyError):
        model.objects.filter(pk=ev.pk).update(detail={})
    with pytest.raises(AppendOnlyError):
        model.objects.filter(pk=ev.pk).delete()
    assert model.objects.get(pk=ev.pk).detail != {"tampered": True}


def test_inserts_still_work_and_actors_are_protected(events):
    ProcedureEvent.objects.create(
        requested_procedure=events["proc"], action="note", to_status="scheduled", at=timezone.now()
    )
    assert ProcedureEvent.objects.filter(requested_procedure=events["proc"]).count() == 2
    # Deleting the actor would SET NULL (an UPDATE) on the evidence: refused, deactivate instead.
    with pytest.raises(ProtectedError), transaction.atomic():
        events["actor"].delete()
