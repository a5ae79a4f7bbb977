"""Every error is an OperationOutcome with the right status: 400, 401, 403, 404, 405, 406 (never 500)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from fhir.resources.R4B.operationoutcome import OperationOutcome

from audit.models import AuditEvent
from fhir.mapping import REGISTRY

from .conftest import FHIR_JSON

pytestmark = pytest.mark.django_db

TYPES = list(REGISTRY)


def outcome(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith(FHIR_JSON)
    data = json.loads(response.content)
    OperationOutcome.model_validate(data)
    return data["issue"]


@pytest.mark.parametrize("type_name", TYPES)
def test_unknown_search_parameter_is_400_naming_it(fhir_client, type_name):
    issues = outcome(fhir_client("admin").get(f"/fhir/{type_name}?colour=blue"), 400)
    assert issues[0]["expression"] == ["colour"]
    assert "colour" in issues[0]["diagnostics"] and issues[0]["code"] == "not-supported"


@pytest.mark.parametrize(
    "query,expression",
    [
        ("Patient?birthdate=yesterday", "birthdate"),
        ("Patient?birthdate=1990-13-01", "birthdate"),
        ("Patient?birthdate=ne1990", "birthdate"),
        ("Patient?gender=robot", "gender"),
        ("Patient?name:missing=true", "name:missing"),
        ("Patient?name=", "name"),
        ("Patient?_count=abc", "_count"),
        ("Patient?_count=-1", "_count"),
        ("Patient?_offset=x", "_offset"),
        ("ServiceRequest?status=happy", "status"),
        ("ServiceRequest?patient=Group/1", "patient"),
        ("ServiceRequest?authored=soon", "authored"),
        ("Appointment?status=late", "status"),
        ("Appointment?date=2026-02-30", "date"),
        ("DiagnosticReport?status=done", "status"),
        ("ImagingStudy?started=x", "started"),
        ("ImagingStudy?basedon=Patient/1", "basedon"),
    ],
)
def test_invalid_search_values_are_400(fhir_client, query, expression):
    issues = outcome(fhir_client("admin").get(f"/fhir/{query}"), 400)
    assert issues[0]["expression"] == [expression]


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Patient/1", "/fhir/ServiceRequest"])
def test_no_credentials_is_401(fhir_client, path):
    r = fhir_client(None).get(path)
    issues = outcome(r, 401)
    assert issues[0]["code"] == "login"
    assert r["WWW-Authenticate"] == "Token"


def test_bad_token_is_401(db):
    r = Client(HTTP_AUTHORIZATION="Token not-a-token").get("/fhir/Patient")
    outcome(r, 401)


def test_metadata_needs_no_credentials(client):
    assert client.get("/fhir/metadata").status_code == 200


def test_head_is_get_without_body(fhir_client, wang):
    r = fhir_client("front_desk").head(f"/fhir/Patient/{wang.pk}")
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize(
    "role,path",
    [
        ("front_desk", "/fhir/ImagingStudy"),
        ("technologist", "/fhir/DiagnosticReport"),
        ("front_desk", "/fhir/ImagingStudy/1"),
    ],
)
def test_role_without_permission_is_403_and_audited(fhir_client, role, path):
    issues = outcome(fhir_client(role).get(path), 403)
    assert issues[0]["code"] == "forbidden"
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied", detail__path=path).exists()


def test_session_auth_works_too(users, story):
    c = Client()
    c.force_login(users["front_desk"])
    assert c.get(f"/fhir/Patient/{story['patient'].pk}").status_code == 200


def test_object_scope_hides_what_the_rest_api_hides(fhir_client, story, users):
    from ris.models import StaffProfile

    StaffProfile.objects.update_or_create(user=users["technologist"], defaults={"modalities": "MR"})
    proc = story["procedure"]
    outcome(fhir_client("technologist").get(f"/fhir/ServiceRequest/{proc.pk}"), 404)
    r = fhir_client("technologist").get("/fhir/ServiceRequest")
    assert json.loads(r.content)["total"] == 0
    # The front desk sees signed reports only (for release), like the REST API.
    from reports.models import Report

    Report.objects.filter(pk=story["report"].pk)  # final: visible
    assert fhir_client("front_desk").get(f"/fhir/DiagnosticReport/{story['report'].pk}").status_code == 200


def test_front_desk_does_not_see_preliminary_reports(fhir_client, users):
    from reports import services
    from scheduling import services as sched
    from tests.factories import ProcedureTypeFactory, StationFactory, make_order

    proc = make_order(
        station=StationFactory(modality="MR"), procedure_type=ProcedureTypeFactory(modality="MR")
    ).procedures.get()
    sched.procedure_start(procedure=proc)
    sched.procedure_complete(procedure=proc)
    report = services.report_claim(procedure=proc, actor=users["radiologist"])
    services.report_save_draft(report=report, actor=users["radiologist"], findings="f", impression="i")
    services.report_submit(report=report, actor=users["radiologist"])
    outcome(fhir_client("front_desk").get(f"/fhir/DiagnosticReport/{report.pk}"), 404)
    r = fhir_client("radiologist").get(f"/fhir/DiagnosticReport/{report.pk}")
    assert r.status_code == 200 and json.loads(r.content)["status"] == "preliminary"
    assert "data" not in json.loads(r.content)["presentedForm"][0] or json.loads(r.content)["presentedForm"][
        0
    ]["contentType"].startswith("text/plain")


@pytest.mark.parametrize(
    "path,code",
    [
        ("/fhir/Patient/999999", "not-found"),
        ("/fhir/Patient/abc", "not-found"),
        ("/fhir/Observation", "not-supported"),
        ("/fhir/Observation/1", "not-supported"),
        ("/fhir/Patient/1/_history", "not-supported"),
        ("/fhir/", "not-supported"),
        ("/fhir/Patient/$everything", "not-supported"),
    ],
)
def test_unknown_is_404(fhir_client, path, code):
    issues = outcome(fhir_client("admin").get(path), 404)
    assert issues[0]["code"] == code


@pytest.mark.parametrize(
    "method,path",
    [
        ("delete", "/fhir/Patient/1"),
        ("put", "/fhir/Patient/1"),
        ("post", "/fhir/Patient"),
        ("post", "/fhir/ImagingStudy"),
        ("patch", "/fhir/ServiceRequest/1"),
        ("delete", "/fhir/ServiceRequest"),
        ("options", "/fhir/Patient"),
        ("post", "/fhir/metadata"),
    ],
)
def test_unsupported_interaction_is_405(fhir_client, method, path):
    r = getattr(fhir_client("admin"), method)(path, "{}", content_type=FHIR_JSON)
    issues = outcome(r, 405)
    assert issues[0]["code"] == "not-supported"


@pytest.mark.parametrize(
    "headers,path",
    [
        ({"HTTP_ACCEPT": "application/fhir+xml"}, "/fhir/Patient"),
        ({}, "/fhir/Patient?_format=xml"),
        ({}, "/fhir/metadata?_format=application/fhir+xml"),
    ],
)
def test_xml_is_406(tokens, headers, path):
    c = Client(HTTP_AUTHORIZATION=f"Token {tokens['admin']}", **headers)
    outcome(c.get(path), 406)


def test_json_variants_are_accepted(tokens, db):
    for accept in ["application/json", "*/*", "application/fhir+json;q=0.9, text/html", ""]:
        c = Client(HTTP_AUTHORIZATION=f"Token {tokens['admin']}", HTTP_ACCEPT=accept)
        assert c.get("/fhir/Patient?_format=json").status_code == 200, accept


WEIRD = [
    "",
    "|",
    "||",
    "a|b|c",
    "\\,",
    ",,,",
    "Patient/",
    "http://x/",
    "ge",
    "1" * 40,
    "王",
    "%00",
    "eq2026-01-01T25:00",
]


@pytest.mark.parametrize("type_name", TYPES)
def test_no_value_of_any_parameter_is_a_500(fhir_client, story, type_name):
    c = fhir_client("admin")
    for name in REGISTRY[type_name].params:
        for value in WEIRD:
            r = c.get(f"/fhir/{type_name}", {name: value})
            assert r.status_code in (200, 400), (name, value, r.status_code, r.content[:200])
            assert json.loads(r.content)["resourceType"] in ("Bundle", "OperationOutcome")


def test_session_post_without_csrf_token_is_403(users, wang, catalog):
    from .conftest import service_request_body

    c = Client(enforce_csrf_checks=True)
    c.force_login(users["front_desk"])
    r = c.post("/fhir/ServiceRequest", json.dumps(service_request_body(patient=wang)), content_type=FHIR_JSON)
    issues = outcome(r, 403)
    assert issues[0]["diagnostics"].startswith("CSRF")
