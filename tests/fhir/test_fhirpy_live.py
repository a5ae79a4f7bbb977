"""A real FHIR client (fhirpy's SyncFHIRClient, over HTTP) against the live server."""

from __future__ import annotations

import base64

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome, ResourceNotFound

from scheduling.models import Order
from tests.factories import PatientFactory

from .conftest import ACCESSION, PLACER, service_request_body

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fhir(live_server, tokens):
    def make(role="admin", **kwargs) -> SyncFHIRClient:
        return SyncFHIRClient(
            f"{live_server.url}/fhir",
            authorization=f"Token {tokens[role]}",
            requests_config={"timeout": 60},
            **kwargs,
        )

    return make


def test_capability_statement(fhir):
    cs = fhir().execute("metadata", method="get")
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"


def test_read_and_search_every_resource(fhir, story):
    client = fhir("admin")
    patient, proc, step = story["patient"], story["procedure"], story["step"]

    # Patient: Chinese and pinyin round trip.
    found = client.resources("Patient").search(name="王小东").fetch()
    assert [p.id for p in found] == [str(patient.pk)]
    assert [p.id for p in client.resources("Patient").search(name="wang", gender="male").fetch()] == [
        str(patient.pk)
    ]
    p = client.reference("Patient", patient.pk).to_resource()
    names = {n["extension"][0]["valueCode"]: n for n in p["name"]}
    assert names["IDE"]["text"] == "王小东"
    assert (names["ABC"]["family"], names["ABC"]["given"]) == ("Wang", ["XiaoDong"])
    assert p["birthDate"] == "1975-06-01"

    # ServiceRequest by placer number and by accession.
    by_placer = client.resources("ServiceRequest").search(identifier=f"{PLACER}|HIS-1001").fetch()
    assert [sr.id for sr in by_placer] == [str(proc.pk)]
    acc = story["order"].accession_number
    assert client.resources("ServiceRequest").search(identifier=f"{ACCESSION}|{acc}").first().id == str(
        proc.pk
    )
    sr = client.reference("ServiceRequest", proc.pk).to_resource()
    assert sr["status"] == "completed" and sr["subject"]["reference"] == f"Patient/{patient.pk}"

    # Appointment from the scheduled step.
    appts = client.resources("Appointment").search(**{"based-on": f"ServiceRequest/{proc.pk}"}).fetch()
    assert [a.id for a in appts] == [str(step.pk)]
    assert client.reference("Appointment", step.pk).to_resource()["status"] == "fulfilled"

    # ImagingStudy with series and the DICOMweb endpoint.
    studies = client.resources("ImagingStudy").search(patient=f"Patient/{patient.pk}").fetch()
    assert len(studies) == 1
    study = client.reference("ImagingStudy", studies[0].id).to_resource()
    assert study["contained"][0]["address"].endswith("/dicomweb")
    assert len(study["series"]) == 2 and study["series"][0]["instance"]

    # DiagnosticReport: final, conclusion, the PDF, the study link.
    reports = client.resources("DiagnosticReport").search(patient=patient.pk, status="final").fetch()
    assert len(reports) == 1
    dr = client.reference("DiagnosticReport", reports[0].id).to_resource()
    assert dr["conclusion"] == "未见异常。No acute disease."
    assert base64.b64decode(dr["presentedForm"][0]["data"]).startswith(b"%PDF")
    assert dr["imagingStudy"][0]["reference"] == f"ImagingStudy/{story['study'].pk}"


def test_paging_through_next_links(fhir, db):
    for i in range(5):
        PatientFactory(family_name=f"Zhao{i}", given_name="Paging")
    search = fhir().resources("Patient").search(given="Paging").limit(2)
    assert search.fetch_raw()["total"] == 5
    assert len({p.id for p in search.fetch_all()}) == 5  # follows Bundle.link next


def test_create_service_request_and_conditional_create(fhir, wang, catalog):
    body = service_request_body(patient=wang, placer="HIS-LIVE-1")
    cond = {"If-None-Exist": f"identifier={PLACER}|HIS-LIVE-1"}
    client = fhir("front_desk", extra_headers=cond)
    created = client.resource("ServiceRequest", **body)
    created.save()
    assert created.id and created["status"] == "active"
    again = client.resource("ServiceRequest", **service_request_body(patient=wang, placer="HIS-LIVE-1"))
    again.save()
    assert again.id == created.id
    assert Order.objects.filter(placer_order_number="HIS-LIVE-1").count() == 1
    read = fhir("front_desk").reference("ServiceRequest", created.id).to_resource()
    assert read["subject"]["display"].startswith("王小东")
    appt = (
        fhir("front_desk")
        .resources("Appointment")
        .search(**{"based-on": f"ServiceRequest/{created.id}"})
        .first()
    )
    assert appt["status"] == "booked"


def test_errors_reach_the_client_as_operation_outcomes(fhir, live_server, wang, catalog):
    with pytest.raises(AuthorizationError):
        SyncFHIRClient(f"{live_server.url}/fhir").resources("Patient").fetch()
    with pytest.raises(ResourceNotFound):
        fhir().reference("Patient", 999999).to_resource()
    with pytest.raises(OperationOutcome) as exc:
        fhir().resources("Patient").search(colour="blue").fetch()
    assert "colour" in str(exc.value)
    bad = service_request_body(patient=wang, placer="HIS-LIVE-2")
    bad["code"]["coding"][0]["code"] = "NOPE"
    with pytest.raises(OperationOutcome) as exc:
        fhir("front_desk").resource("ServiceRequest", **bad).save()
    assert "ServiceRequest.code.coding[0].code" in str(exc.value)
