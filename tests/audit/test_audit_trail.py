"""The audit trail: one event per access to patient data, and append-only in the database."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, next_slot

pytestmark = pytest.mark.django_db


def _actions_since(mark: int) -> list[tuple[str, int | None, str]]:
    return list(
        AuditEvent.objects.filter(id__gt=mark)
        .order_by("id")
        .values_list("action", "patient_ref", "actor_username")
    )


def test_front_desk_journey_writes_exactly_one_event_per_access(api_for):
    StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    fd = api_for("front_desk")
    mark = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    patient = fd.post(
        "/api/v1/patients/", {"chinese_name": "王小东", "birth_date": "1980-01-01"}, format="json"
    ).json()
    fd.get("/api/v1/patients/", {"q": "王"})
    fd.get(f"/api/v1/patients/{patient['id']}/")
    order = fd.post(
        "/api/v1/orders/",
        {
            "patient": patient["id"],
            "procedure_code": "CTHEAD",
            "station_ae_title": "CT1",
            "start": next_slot().isoformat(),
        },
        format="json",
    ).json()
    proc = order["procedures"][0]["id"]
    fd.post(f"/api/v1/procedures/{proc}/arrive/")
    fd.post(f"/api/v1/procedures/{proc}/cancel/", {"reason": "patient left"}, format="json")
    fd.patch(f"/api/v1/patients/{patient['id']}/", {"phone": "13800000000"}, format="json")

    pid = patient["id"]
    assert _actions_since(mark) == [
        ("patient.create", pid, "u_front_desk"),
        ("patient.search", None, "u_front_desk"),
        ("patient.view", pid, "u_front_desk"),
        ("order.create", pid, "u_front_desk"),
        ("procedure.arrive", pid, "u_front_desk"),
        ("procedure.cancel", pid, "u_front_desk"),
        ("patient.update", pid, "u_front_desk"),
    ]
    ev = AuditEvent.objects.filter(action="procedure.cancel").get()
    assert ev.role == "front_desk"
    assert ev.source_ip == "127.0.0.1"
    assert ev.detail == {"from": "arrived", "to": "cancelled", "reason": "patient left"}


def test_refused_transition_writes_no_success_event(api_for):
    StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    fd = api_for("front_desk")
    p = PatientFactory()
    order = fd.post(
        "/api/v1/orders/",
        {
            "patient": p.pk,
            "procedure_code": "CTHEAD",
            "station_ae_title": "CT1",
            "start": next_slot().isoformat(),
        },
        format="json",
    ).json()
    proc = order["procedures"][0]["id"]
    assert api_for("technologist").post(f"/api/v1/procedures/{proc}/complete/").status_code == 409
    assert not AuditEvent.objects.filter(action="procedure.complete").exists()


def test_python_refuses_update_and_delete():
    ev = audit_record(action="test.event", object_type="x")
    ev.action = "tampered"
    with pytest.raises(PermissionError):
        ev.save()
    with pytest.raises(PermissionError):
        ev.delete()


@pytest.mark.postgres
def test_database_refuses_update_and_delete_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    ev = audit_record(action="test.event", object_type="x", patient_id=7)
    for sql in (
        "UPDATE audit_auditevent SET action = 'tampered' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql, [ev.pk])
    # Bulk ORM paths are refused too.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=ev.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=ev.pk)._raw_delete(AuditEvent.objects.db)
    assert AuditEvent.objects.get(pk=ev.pk).action == "test.event"


def test_logs_carry_no_patient_names(api_for, caplog):
    StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    fd = api_for("front_desk")
    caplog.set_level("DEBUG")
    patient = fd.post(
        "/api/v1/patients/", {"chinese_name": "欧阳娜娜", "patient_id": "SECRET42"}, format="json"
    ).json()
    order = fd.post(
        "/api/v1/orders/",
        {
            "patient": patient["id"],
            "procedure_code": "CTHEAD",
            "station_ae_title": "CT1",
            "start": next_slot().isoformat(),
        },
        format="json",
    ).json()
    fd.post(f"/api/v1/procedures/{order['procedures'][0]['id']}/arrive/")
    text = caplog.text
    assert "欧阳" not in text and "OuYang" not in text and "SECRET42" not in text


def test_refused_api_access_is_recorded_as_denied(api_for):
    patient = PatientFactory()
    before = AuditEvent.objects.count()
    resp = api_for("technologist").post("/api/v1/patients/", {"family_name": "X"}, format="json")
    assert resp.status_code == 403
    new = list(AuditEvent.objects.order_by("id"))[before:]
    assert [(e.action, e.outcome, e.actor_username, e.detail["needed"]) for e in new] == [
        ("access.denied", "denied", "u_technologist", "patient.create")
    ]
    assert patient.pk not in [e.patient_ref for e in new]
