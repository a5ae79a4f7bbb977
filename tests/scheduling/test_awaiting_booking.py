"""Orders awaiting booking: identifiers without a slot, never on the worklist, booked later
with the calendar rules of the web."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from pydicom.dataset import Dataset

from ris.errors import ApplicationError, Conflict, InvalidTransition
from scheduling import services
from scheduling.models import ProcedureEvent, ProcedureStatus, ScheduledProcedureStep, SPSStatus
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order, next_slot
from worklist.mwl import parse_identifier
from worklist.selectors import mwl_query

pytestmark = pytest.mark.django_db


def _unbooked(**kw):
    station = StationFactory(ae_title="CTA", modality="CT")
    ptype = ProcedureTypeFactory(modality="CT", duration_minutes=15)
    order = services.order_create(
        patient=PatientFactory(), procedure_type=ptype, station=None, start=None, **kw
    )
    return order, order.procedures.get(), station


def _mwl(station):
    ds = Dataset()
    ds.AccessionNumber = ""
    ds.ScheduledProcedureStepSequence = [Dataset()]
    return mwl_query(query=parse_identifier(ds), calling_station=station).rows


def test_order_without_slot_has_identifiers_and_is_not_on_the_worklist():
    order, proc, station = _unbooked()
    station.worklist_scope = "all"
    station.save()
    step = proc.steps.get()
    assert proc.status == ProcedureStatus.REQUESTED
    assert order.accession_number and proc.requested_procedure_id and proc.study_instance_uid and step.sps_id
    assert (step.station, step.start, step.end, step.status) == (None, None, None, SPSStatus.SCHEDULED)
    assert ProcedureEvent.objects.get(requested_procedure=proc).to_status == ProcedureStatus.REQUESTED
    assert _mwl(station) == []
    services.procedure_book(procedure=proc, station=station, start=next_slot(60))
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.SCHEDULED
    assert [r["accession"] for r in _mwl(station)] == [order.accession_number]
    assert list(ProcedureEvent.objects.filter(requested_procedure=proc).values_list("action", flat=True)) == [
        "order",
        "book",
    ]


def test_booking_follows_the_calendar_rules():
    _order, proc, station = _unbooked()
    start = next_slot(120)
    make_order(station=station, start=start)  # the slot is taken
    with pytest.raises(Conflict):
        services.procedure_book(procedure=proc, station=station, start=start)
    mr = StationFactory(ae_title="MRA", modality="MR")
    with pytest.raises(ApplicationError):
        services.procedure_book(procedure=proc, station=mr, start=next_slot(180))
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.REQUESTED and proc.steps.get().start is None
    services.procedure_book(procedure=proc, station=station, start=next_slot(180))
    with pytest.raises(InvalidTransition):
        services.procedure_book(procedure=proc, station=station, start=next_slot(240))


def test_awaiting_booking_can_be_cancelled_not_rescheduled_or_started():
    _order, proc, _station = _unbooked()
    with pytest.raises(InvalidTransition):
        services.procedure_reschedule(procedure=proc, start=next_slot(60), reason="x")
    with pytest.raises(InvalidTransition):
        services.procedure_mark_arrived(procedure=proc)
    with pytest.raises(InvalidTransition):
        services.procedure_start(procedure=proc)
    services.procedure_cancel(procedure=proc, reason="not needed")
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.CANCELLED
    assert proc.steps.get().status == SPSStatus.CANCELED


def test_station_and_start_go_together():
    station = StationFactory(ae_title="CTB", modality="CT")
    ptype = ProcedureTypeFactory(modality="CT")
    with pytest.raises(ApplicationError):
        services.order_create(patient=PatientFactory(), procedure_type=ptype, station=station, start=None)


@pytest.mark.postgres
def test_database_refuses_half_booked_steps_and_ignores_unbooked_in_overlap():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL constraints")
    _o1, p1, station = _unbooked()
    _o2, _p2, _ = _unbooked()
    assert ScheduledProcedureStep.objects.filter(start__isnull=True).count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledProcedureStep.objects.filter(requested_procedure=p1).update(station=station)


def test_api_book_and_placer_filter(api_for):
    order, proc, station = _unbooked(placer_order_number="PX9")
    client = api_for("front_desk")
    rows = client.get("/api/v1/orders/", {"placer_order_number": "PX9"}).json()
    rows = rows.get("results", rows)
    assert [r["accession_number"] for r in rows] == [order.accession_number]
    assert rows[0]["procedures"][0]["steps"][0]["station"] is None
    start = next_slot(300)
    resp = client.post(
        f"/api/v1/procedures/{proc.pk}/book/",
        {"station_ae_title": station.ae_title, "start": start.isoformat()},
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "scheduled"
    again = client.post(
        f"/api/v1/procedures/{proc.pk}/book/",
        {"station_ae_title": station.ae_title, "start": start.isoformat()},
    )
    assert again.status_code == 409
    assert api_for("technologist").post(f"/api/v1/procedures/{proc.pk}/book/", {}).status_code == 403


def test_to_book_page_lists_and_books(client_for):
    order, proc, station = _unbooked()
    client = client_for("front_desk")
    html = client.get("/scheduling/to-book/").content.decode()
    assert order.accession_number in html
    page = client.get(f"/procedures/{proc.pk}/book/")
    assert page.status_code == 200
    start = next_slot(420)
    from scheduling.forms import slot_value

    resp = client.post(
        f"/procedures/{proc.pk}/book/",
        {"station": station.pk, "day": start.date().isoformat(), "start": slot_value(start)},
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.SCHEDULED
    assert order.accession_number not in client.get("/scheduling/to-book/").content.decode()
    assert client_for("technologist").get("/scheduling/to-book/").status_code == 403
