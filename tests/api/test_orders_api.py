"""The REST API for the front-desk journey: patients, orders, procedures, errors."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from ris.vr import validate_sh, validate_ui
from scheduling.models import ProcedureStatus, RequestedProcedure
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, next_slot

pytestmark = pytest.mark.django_db


@pytest.fixture
def ct():
    station = StationFactory(ae_title="CT1", modality="CT")
    ptype = ProcedureTypeFactory(code_value="CTHEAD", modality="CT", duration_minutes=15)
    return station, ptype


def _order_payload(patient, **over):
    payload = {
        "patient": patient.pk,
        "procedure_code": "CTHEAD",
        "station_ae_title": "CT1",
        "start": next_slot().isoformat(),
        "priority": "STAT",
        "referring_physician": "Li^Ming",
        "reason": "Headache",
    }
    payload.update(over)
    return payload


def test_create_order_returns_all_identifiers(api_for, ct):
    patient = PatientFactory()
    resp = api_for("front_desk").post("/api/v1/orders/", _order_payload(patient), format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    for key in ("accession_number", "requested_procedure_id", "sps_id"):
        assert body[key]
        validate_sh(body[key])
    validate_ui(body["study_instance_uid"])
    proc = RequestedProcedure.objects.get(study_instance_uid=body["study_instance_uid"])
    assert proc.order.accession_number == body["accession_number"]
    assert proc.status == ProcedureStatus.SCHEDULED
    assert body["procedures"][0]["steps"][0]["station"] == "CT1"


def test_double_booking_is_a_409_and_creates_nothing(api_for, ct):
    patient = PatientFactory()
    api = api_for("front_desk")
    assert api.post("/api/v1/orders/", _order_payload(patient), format="json").status_code == 201
    resp = api.post("/api/v1/orders/", _order_payload(PatientFactory()), format="json")
    assert resp.status_code == 409
    assert resp.json()["errors"]["start"] == ["Slot already booked."]
    assert RequestedProcedure.objects.count() == 1


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"procedure_code": "NOPE"}, "procedure_code"),
        ({"station_ae_title": "XX9"}, "station_ae_title"),
        ({"priority": "URGENT!"}, "priority"),
        ({"referring_physician": "a=b=c=d"}, "referring_physician"),
        ({"reason": "x" * 65}, "reason"),
        ({"start": "not a date"}, "start"),
        ({"placer_order_number": "bad\\value"}, "placer_order_number"),
    ],
)
def test_invalid_order_input_gets_field_errors_not_500(api_for, ct, override, field):
    resp = api_for("front_desk").post(
        "/api/v1/orders/", _order_payload(PatientFactory(), **override), format="json"
    )
    assert resp.status_code == 400, resp.content
    body = resp.json()
    errors = body.get("errors", body)
    assert field in errors
    assert RequestedProcedure.objects.count() == 0


def test_modality_mismatch_is_refused(api_for, ct):
    StationFactory(ae_title="MR1", modality="MR")
    resp = api_for("front_desk").post(
        "/api/v1/orders/", _order_payload(PatientFactory(), station_ae_title="MR1"), format="json"
    )
    assert resp.status_code == 400
    assert "station" in resp.json()["errors"]


def test_procedure_transitions_via_api(api_for, ct):
    patient = PatientFactory()
    order = api_for("front_desk").post("/api/v1/orders/", _order_payload(patient), format="json").json()
    pid = order["procedures"][0]["id"]
    assert api_for("front_desk").post(f"/api/v1/procedures/{pid}/arrive/").json()["status"] == "arrived"
    tech = api_for("technologist")
    assert tech.post(f"/api/v1/procedures/{pid}/start/").json()["status"] == "in_progress"
    # A second start is a conflict, with a clear message.
    resp = tech.post(f"/api/v1/procedures/{pid}/start/")
    assert resp.status_code == 409
    assert "in_progress" in resp.json()["detail"]
    resp = tech.post(f"/api/v1/procedures/{pid}/discontinue/", {}, format="json")
    assert resp.status_code == 400
    resp = tech.post(f"/api/v1/procedures/{pid}/discontinue/", {"reason": "contrast reaction"}, format="json")
    assert resp.json()["status"] == "discontinued"
    events = tech.get(f"/api/v1/procedures/{pid}/events/").json()
    assert [e["action"] for e in events] == ["order", "arrive", "start", "discontinue"]


def test_reschedule_via_api(api_for, ct):
    order = (
        api_for("front_desk").post("/api/v1/orders/", _order_payload(PatientFactory()), format="json").json()
    )
    pid = order["procedures"][0]["id"]
    new_start = next_slot(120)
    resp = api_for("front_desk").post(
        f"/api/v1/procedures/{pid}/reschedule/",
        {"start": new_start.isoformat(), "reason": "patient asked"},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["steps"][0]["start"].startswith(new_start.isoformat()[:16])


def test_patient_register_fills_pinyin_and_searches_every_group(api_for):
    api = api_for("front_desk")
    resp = api.post(
        "/api/v1/patients/", {"chinese_name": "王小东", "birth_date": "1980-05-06", "sex": "M"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert (body["family_name"], body["given_name"]) == ("Wang", "XiaoDong")
    assert body["dicom_name"] == "Wang^XiaoDong=王^小东"
    assert body["patient_id"]  # an MRN was generated
    for q in [
        "王小东",
        "王",
        "wang",
        "WANG",
        "xiaodong",
        "wangxiaodong",
        "Wang XiaoDong",
        body["patient_id"],
    ]:
        hits = api.get("/api/v1/patients/", {"q": q}).json()["results"]
        assert [h["id"] for h in hits] == [body["id"]], q
    assert api.get("/api/v1/patients/", {"q": "li"}).json()["count"] == 0


def test_patient_duplicate_id_is_409(api_for):
    api = api_for("front_desk")
    assert (
        api.post("/api/v1/patients/", {"patient_id": "X1", "family_name": "Doe"}, format="json").status_code
        == 201
    )
    resp = api.post("/api/v1/patients/", {"patient_id": "X1", "family_name": "Roe"}, format="json")
    assert resp.status_code == 409, resp.content


def test_patient_invalid_name_is_400(api_for):
    resp = api_for("front_desk").post("/api/v1/patients/", {"family_name": "Do^e"}, format="json")
    assert resp.status_code == 400
    assert "family_name" in resp.json()["errors"]


def test_token_auth(users, client):
    from rest_framework.test import APIClient

    users["front_desk"].set_password("Secret-pass-9")
    users["front_desk"].save()
    resp = client.post("/api/v1/auth/token/", {"username": "u_front_desk", "password": "Secret-pass-9"})
    assert resp.status_code == 200
    token = resp.json()["token"]
    api = APIClient()
    assert api.get("/api/v1/patients/").status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/patients/").status_code == 200
    assert api.get("/api/v1/auth/me/").json()["roles"] == ["front_desk"]


def test_schema_and_docs_served_locally(client, users):
    client.force_login(users["admin"])
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orders/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_api_reads_are_audited(api_for, ct):
    patient = PatientFactory()
    api = api_for("technologist")
    before = AuditEvent.objects.count()
    api.get(f"/api/v1/patients/{patient.pk}/")
    ev = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (ev.action, ev.patient_ref, ev.actor_username) == ("patient.view", patient.pk, "u_technologist")
