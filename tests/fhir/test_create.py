"""Create ServiceRequest: mapping onto the order service, conditional create, the 422s."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from audit.models import AuditEvent
from scheduling.models import Order, RequestedProcedure

from .conftest import ACCESSION, FHIR_JSON, PLACER, service_request_body

pytestmark = pytest.mark.django_db


def post(client, body, **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body, ensure_ascii=False)
    return client.post("/fhir/ServiceRequest", data, content_type=FHIR_JSON, **headers)


def outcome(response):
    data = json.loads(response.content)
    assert data["resourceType"] == "OperationOutcome", data
    return data


def test_create_books_the_order(fhir_client, wang, catalog):
    body = service_request_body(patient=wang)
    r = post(fhir_client("front_desk"), body)
    assert r.status_code == 201, r.content
    res = json.loads(r.content)
    proc = RequestedProcedure.objects.select_related("order").get(pk=int(res["id"]))
    assert r["Location"] == f"http://testserver/fhir/ServiceRequest/{proc.pk}"
    order = proc.order
    assert order.placer_order_number == "HIS-2001"
    assert order.patient_id == wang.pk and order.priority == "HIGH"
    assert order.reason == "咳嗽两周 cough" and order.clinical_info == "Allergic to iodine"
    assert order.requesting_physician == "Zhang^Wei"
    step = proc.steps.get()
    assert step.station.ae_title == "CT01"
    assert step.start.isoformat() == body["occurrenceDateTime"] or step.start == __import__(
        "datetime"
    ).datetime.fromisoformat(body["occurrenceDateTime"])
    ids = {i["system"]: i["value"] for i in res["identifier"]}
    assert ids[PLACER] == "HIS-2001" and ids[ACCESSION] == order.accession_number
    assert res["status"] == "active" and res["priority"] == "urgent"
    assert res["subject"]["display"].startswith("王小东")
    assert AuditEvent.objects.filter(action="order.create", object_id=str(order.pk)).count() == 1
    assert proc.events.get().source == "fhir"


def test_create_by_patient_identifier_and_placer_accession(fhir_client, wang, catalog):
    body = service_request_body(patient=wang, placer="HIS-2002")
    body["subject"] = {"identifier": {"system": "urn:ris:patient-id:HIS", "value": "P-WXD-1"}}
    body["identifier"].append({"system": ACCESSION, "value": "HISACC77"})
    r = post(fhir_client("front_desk"), body)
    assert r.status_code == 201, r.content
    assert Order.objects.get(placer_order_number="HIS-2002").accession_number == "HISACC77"


def test_conditional_create_is_idempotent(fhir_client, wang, catalog):
    c = fhir_client("front_desk")
    cond = {"HTTP_IF_NONE_EXIST": f"identifier={PLACER}|HIS-3001"}
    first = post(c, service_request_body(patient=wang, placer="HIS-3001"), **cond)
    assert first.status_code == 201
    again = post(c, service_request_body(patient=wang, placer="HIS-3001"), **cond)
    assert again.status_code == 200
    assert json.loads(again.content)["id"] == json.loads(first.content)["id"]
    assert "Location" not in again
    assert Order.objects.filter(placer_order_number="HIS-3001").count() == 1


def test_conditional_create_multiple_matches_is_412(fhir_client, wang, catalog):
    from tests.factories import make_order, next_slot

    for i in range(2):
        make_order(
            patient=wang,
            station=catalog["station"],
            procedure_type=catalog["procedure"],
            start=next_slot(15 * (i + 30)),
            reason="dup",
        )
    r = post(
        fhir_client("front_desk"),
        service_request_body(patient=wang, placer="HIS-3002"),
        HTTP_IF_NONE_EXIST=f"patient=Patient/{wang.pk}&code=CTCHEST",
    )
    assert r.status_code == 412
    assert outcome(r)["issue"][0]["code"] == "multiple-matches"
    assert not Order.objects.filter(placer_order_number="HIS-3002").exists()


def test_duplicate_placer_without_condition_is_409(fhir_client, wang, catalog):
    c = fhir_client("front_desk")
    assert post(c, service_request_body(patient=wang, placer="HIS-3003")).status_code == 201
    from tests.factories import next_slot

    body = service_request_body(patient=wang, placer="HIS-3003", start=next_slot(400))
    r = post(c, body)
    assert r.status_code == 409
    assert outcome(r)["issue"][0]["code"] == "duplicate"
    assert Order.objects.filter(placer_order_number="HIS-3003").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_conditional_creates_make_one_order(tokens, wang, catalog):
    """Two HIS retries racing: the per-placer lock makes one 201 and one 200."""
    from django.test import Client

    body = json.dumps(service_request_body(patient=wang, placer="HIS-RACE"))
    results, barrier = [], threading.Barrier(2)

    def send():
        try:
            c = Client(HTTP_AUTHORIZATION=f"Token {tokens['front_desk']}")
            barrier.wait(timeout=30)
            r = c.post(
                "/fhir/ServiceRequest",
                body,
                content_type=FHIR_JSON,
                HTTP_IF_NONE_EXIST=f"identifier={PLACER}|HIS-RACE",
            )
            results.append(r.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [200, 201]
    assert Order.objects.filter(placer_order_number="HIS-RACE").count() == 1


def test_prefer_return_minimal(fhir_client, wang, catalog):
    r = post(
        fhir_client("front_desk"),
        service_request_body(patient=wang, placer="HIS-3004"),
        HTTP_PREFER="return=minimal",
    )
    assert r.status_code == 201 and r.content == b"" and r["Location"]


BAD = [
    # (mutation, expected status, expected expression fragment)
    (lambda b: b.update(resourceType="Patient"), 422, "ServiceRequest.resourceType"),
    (lambda b: b.pop("resourceType"), 422, "ServiceRequest.resourceType"),
    (lambda b: b.pop("status"), 422, "ServiceRequest.status"),
    (lambda b: b.update(status="bogus"), 422, "ServiceRequest.status"),
    (lambda b: b.update(status="draft"), 422, "ServiceRequest.status"),
    (lambda b: b.update(intent="plan"), 422, "ServiceRequest.intent"),
    (lambda b: b.update(priority="whenever"), 422, "ServiceRequest.priority"),
    (lambda b: b.update(occurrenceDateTime="tomorrow"), 422, "ServiceRequest.occurrenceDateTime"),
    (lambda b: b.update(occurrenceDateTime="2030-01-01"), 422, "ServiceRequest.occurrenceDateTime"),
    (lambda b: b.update(colour="blue"), 422, "ServiceRequest.colour"),
    (lambda b: b["identifier"][0].update(value=42), 422, "ServiceRequest.identifier[0].value"),
    (lambda b: b["identifier"][0].update(system="urn:other-his"), 422, "ServiceRequest.identifier[0].system"),
    (lambda b: b.update(identifier=[]), 422, "ServiceRequest.identifier"),
    (lambda b: b.pop("identifier"), 422, "ServiceRequest.identifier"),
    (lambda b: b.pop("code"), 422, "ServiceRequest.code"),
    (
        lambda b: b["code"]["coding"][0].update(system="http://example.org/codes"),
        422,
        "ServiceRequest.code.coding[0].system",
    ),
    (lambda b: b["code"]["coding"][0].update(code="NOPE"), 422, "ServiceRequest.code.coding[0].code"),
    (lambda b: b.update(subject={"reference": "Patient/999999"}), 422, "ServiceRequest.subject.reference"),
    (lambda b: b.update(subject={"reference": "Group/1"}), 422, "ServiceRequest.subject.reference"),
    (
        lambda b: b.update(subject={"identifier": {"system": "urn:x", "value": "P-WXD-1"}}),
        422,
        "ServiceRequest.subject.identifier.system",
    ),
    (
        lambda b: b.update(subject={"identifier": {"system": "urn:ris:patient-id:HIS", "value": "NOPE"}}),
        422,
        "ServiceRequest.subject.identifier",
    ),
    (
        lambda b: b["performer"][0]["identifier"].update(value="XX99"),
        422,
        "ServiceRequest.performer[0].identifier.value",
    ),
    (lambda b: b.pop("performer"), 422, "ServiceRequest.performer"),
    (lambda b: b.pop("occurrenceDateTime"), 422, "ServiceRequest.occurrenceDateTime"),
    (lambda b: b.update(reasonCode=[{"text": "x" * 80}]), 422, "ServiceRequest.reasonCode"),
    (
        lambda b: b.update(occurrenceTiming={"code": {"text": "daily"}}),
        422,
        "ServiceRequest.occurrenceTiming",
    ),
    (
        lambda b: b.pop("occurrenceDateTime") and b.update(occurrenceTiming={"code": {"text": "daily"}}),
        422,
        "ServiceRequest.occurrenceTiming",
    ),
    (lambda b: b.update(subject={"reference": "#p1"}), 422, "ServiceRequest.subject.reference"),
    (lambda b: b.update(doNotPerform=True), 422, "ServiceRequest.doNotPerform"),
]


@pytest.mark.parametrize("mutate,status,expression", BAD)
def test_bad_bodies_name_the_element_and_change_nothing(
    fhir_client, wang, catalog, mutate, status, expression
):
    body = service_request_body(patient=wang, placer="HIS-BAD")
    mutate(body)
    before = (Order.objects.count(), RequestedProcedure.objects.count())
    r = post(fhir_client("front_desk"), body)
    assert r.status_code == status, r.content
    issues = outcome(r)["issue"]
    expressions = [e for i in issues for e in i.get("expression", [])]
    assert any(e.startswith(expression) for e in expressions), (expression, issues)
    assert all(i["diagnostics"] for i in issues)
    assert (Order.objects.count(), RequestedProcedure.objects.count()) == before


def test_booked_slot_is_409_conflict(fhir_client, wang, catalog):
    from tests.factories import next_slot

    start = next_slot(600)
    c = fhir_client("front_desk")
    assert post(c, service_request_body(patient=wang, placer="HIS-S1", start=start)).status_code == 201
    r = post(c, service_request_body(patient=wang, placer="HIS-S2", start=start))
    assert r.status_code == 409
    assert outcome(r)["issue"][0]["expression"] == ["ServiceRequest.occurrenceDateTime"]


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b"", 400),
    ],
)
def test_malformed_json_is_400(fhir_client, wang, raw, status):
    r = post(fhir_client("front_desk"), raw)
    assert r.status_code == status
    assert outcome(r)["issue"][0]["code"] == "structure"


def test_wrong_content_type_is_415(fhir_client, wang):
    r = fhir_client("front_desk").post(
        "/fhir/ServiceRequest", "<ServiceRequest/>", content_type="application/fhir+xml"
    )
    assert r.status_code == 415
    outcome(r)


def test_if_none_exist_with_unknown_system_or_parameter_is_400(fhir_client, wang, catalog):
    c = fhir_client("front_desk")
    body = service_request_body(patient=wang, placer="HIS-C1")
    r = post(c, body, HTTP_IF_NONE_EXIST="identifier=urn:his-internal|HIS-C1")
    assert r.status_code == 400 and "urn:his-internal" in outcome(r)["issue"][0]["diagnostics"]
    r = post(c, body, HTTP_IF_NONE_EXIST="colour=blue")
    assert r.status_code == 400 and outcome(r)["issue"][0]["expression"] == ["colour"]
    assert not Order.objects.filter(placer_order_number="HIS-C1").exists()


@pytest.mark.parametrize("role", ["technologist", "radiologist", "reviewer", "dept_head"])
def test_create_needs_order_create_permission(fhir_client, wang, catalog, role):
    r = post(fhir_client(role), service_request_body(patient=wang, placer=f"HIS-R-{role}"))
    assert r.status_code == 403
    assert outcome(r)["issue"][0]["code"] == "forbidden"
    assert AuditEvent.objects.filter(action="access.denied", detail__needed="order.create").exists()


def test_oversized_body_is_413(fhir_client, wang, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = service_request_body(patient=wang, placer="HIS-BIG", note=[{"text": "x" * 20_000}])
    r = post(fhir_client("front_desk"), body)
    assert r.status_code == 413
    assert outcome(r)["issue"][0]["code"] == "too-costly"
    assert not Order.objects.filter(placer_order_number="HIS-BIG").exists()
