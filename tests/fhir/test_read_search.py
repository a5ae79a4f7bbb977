"""Read and search of every resource type through the Django test client (shape, paging, audit)."""

from __future__ import annotations

import base64
import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from audit.models import AuditEvent
from fhir.mapping import REGISTRY
from tests.factories import PatientFactory

from .conftest import ACCESSION, FHIR_JSON, PLACER

pytestmark = pytest.mark.django_db


def body(response):
    assert response["Content-Type"].startswith(FHIR_JSON), response["Content-Type"]
    return json.loads(response.content)


def test_both_fhir_packages_import():
    """Our app and the installed fhir.resources share the top-level name ``fhir`` (fhir/__init__.py)."""
    import fhir.resources.R4B

    import fhir

    assert any(p.endswith("site-packages/fhir") for p in fhir.__path__)
    assert fhir.resources.R4B.__name__ == "fhir.resources.R4B"
    assert REGISTRY


def test_metadata_lists_exactly_what_is_served(client):
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = body(r)
    CapabilityStatement.model_validate(cs)
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    resources = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert set(resources) == {"Patient", "ServiceRequest", "Appointment", "ImagingStudy", "DiagnosticReport"}
    for name, res in resources.items():
        codes = {i["code"] for i in res["interaction"]}
        assert codes == (
            {"read", "search-type", "create"} if name == "ServiceRequest" else {"read", "search-type"}
        )
        assert {p["name"] for p in res["searchParam"]} == set(REGISTRY[name].params)
    assert resources["ServiceRequest"]["conditionalCreate"] is True
    assert {p["name"] for p in resources["Patient"]["searchParam"]} >= {
        "identifier",
        "name",
        "birthdate",
        "gender",
    }


def test_patient_read_has_chinese_and_pinyin_names(fhir_client, story):
    p = story["patient"]
    r = fhir_client("front_desk").get(f"/fhir/Patient/{p.pk}")
    assert r.status_code == 200
    res = body(r)
    assert res["resourceType"] == "Patient" and res["id"] == str(p.pk)
    ide, abc = res["name"][0], res["name"][1]
    assert ide["text"] == "王小东" and ide["family"] == "王" and ide["given"] == ["小东"]
    assert ide["extension"][0]["valueCode"] == "IDE"
    assert abc["family"] == "Wang" and abc["given"] == ["XiaoDong"]
    assert abc["extension"][0]["valueCode"] == "ABC"
    assert res["identifier"][0] == {
        "use": "usual",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR",
                    "display": "Medical record number",
                }
            ]
        },
        "system": "urn:ris:patient-id:HIS",
        "value": "P-WXD-1",
    }
    assert res["gender"] == "male" and res["birthDate"] == "1975-06-01"
    assert "王小东".encode() in r.content  # UTF-8 on the wire, not \u escapes


@pytest.mark.parametrize(
    "query",
    [
        "name=王小东",
        "name=王",
        "name=wang",
        "name=XiaoDong",
        "name=wangxiaodong",
        "name=Wang%20XiaoDong",
        "family=王",
        "given=小东",
        "name:exact=王小东",
        "name:contains=小东",
        "identifier=urn:ris:patient-id:HIS|P-WXD-1",
        "identifier=P-WXD-1",
        "birthdate=1975-06-01",
        "birthdate=1975",
        "birthdate=ge1975-06-01&birthdate=lt1975-06-02",
        "gender=male&name=wang",
    ],
)
def test_patient_search_finds_wang(fhir_client, wang, query):
    PatientFactory(family_name="Li", given_name="Na", birth_date="1990-01-01", sex="F")
    r = fhir_client("front_desk").get(f"/fhir/Patient?{query}")
    assert r.status_code == 200, r.content
    bundle = body(r)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert ids == [str(wang.pk)], (query, ids)
    assert bundle["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["name=Li", "identifier=urn:ris:patient-id:RIS|P-WXD-1", "gender=female&name=wang", "birthdate=1976"],
)
def test_patient_search_excludes(fhir_client, wang, query):
    r = fhir_client("front_desk").get(f"/fhir/Patient?{query}")
    assert r.status_code == 200
    assert body(r)["total"] == 0


def test_paging_links_count_and_total(fhir_client, db):
    for i in range(7):
        PatientFactory(family_name=f"Zhou{i}", given_name="Page")
    c = fhir_client("front_desk")
    first = body(c.get("/fhir/Patient?given=Page&_count=3"))
    assert first["total"] == 7 and len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert set(links) == {"self", "next"}
    assert links["next"].startswith("http://testserver/fhir/Patient?")
    seen = [e["resource"]["id"] for e in first["entry"]]
    url = links["next"]
    while url:
        page = body(c.get(url.removeprefix("http://testserver")))
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "previous" in links
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = links.get("next")
    assert len(seen) == len(set(seen)) == 7
    only_total = body(c.get("/fhir/Patient?given=Page&_count=0"))
    assert only_total["total"] == 7 and "entry" not in only_total


def test_post_search_form(fhir_client, wang):
    r = fhir_client("front_desk").post(
        "/fhir/Patient/_search", "name=%E7%8E%8B", content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 200
    assert body(r)["total"] == 1


def test_service_request_read_and_search(fhir_client, story):
    proc, order = story["procedure"], story["order"]
    c = fhir_client("front_desk")
    res = body(c.get(f"/fhir/ServiceRequest/{proc.pk}"))
    assert res["status"] == "completed" and res["intent"] == "order"
    systems = {i["system"]: i["value"] for i in res["identifier"]}
    assert systems[PLACER] == "HIS-1001"
    assert systems[ACCESSION] == order.accession_number
    assert res["code"]["coding"][0] == {
        "system": "urn:ris:coding-scheme:99RIS",
        "code": "CTCHEST",
        "display": "CT chest",
    }
    assert res["subject"]["reference"] == f"Patient/{story['patient'].pk}"
    assert res["performer"][0]["identifier"]["value"] == "CT01"
    assert res["requester"]["display"] == "Li Ming"
    for query in [
        f"identifier={PLACER}|HIS-1001",
        f"identifier={ACCESSION}|{order.accession_number}",
        "identifier=HIS-1001",
        f"patient=Patient/{story['patient'].pk}",
        f"subject={story['patient'].pk}",
        "status=completed",
        "status=active,completed",
        "code=urn:ris:coding-scheme:99RIS|CTCHEST",
        "code=CTCHEST",
    ]:
        b = body(c.get(f"/fhir/ServiceRequest?{query}"))
        assert [e["resource"]["id"] for e in b.get("entry", [])] == [str(proc.pk)], query
    for query in [
        "status=active",
        "status=draft",
        "identifier=urn:other|HIS-1001",
        "code=http://loinc.org|CTCHEST",
    ]:
        assert body(c.get(f"/fhir/ServiceRequest?{query}"))["total"] == 0, query


def test_appointment_from_scheduled_step(fhir_client, story):
    step = story["step"]
    c = fhir_client("front_desk")
    res = body(c.get(f"/fhir/Appointment/{step.pk}"))
    assert res["status"] == "fulfilled"
    assert res["basedOn"] == [{"reference": f"ServiceRequest/{story['procedure'].pk}"}]
    actors = [p["actor"] for p in res["participant"]]
    assert actors[0]["reference"] == f"Patient/{story['patient'].pk}"
    assert actors[1]["identifier"]["value"] == "CT01"
    assert res["identifier"] == [{"system": "urn:ris:scheduled-procedure-step-id", "value": step.sps_id}]
    from django.utils import timezone

    day = timezone.localtime(step.start).date().isoformat()
    for query in [
        f"based-on=ServiceRequest/{story['procedure'].pk}",
        f"patient={story['patient'].pk}",
        "status=fulfilled",
        f"identifier={step.sps_id}",
        f"date={day}",
    ]:
        b = body(c.get(f"/fhir/Appointment?{query}"))
        assert [e["resource"]["id"] for e in b.get("entry", [])] == [str(step.pk)], query
    assert body(c.get("/fhir/Appointment?status=booked"))["total"] == 0


def test_imaging_study_with_series_and_dicomweb_endpoint(fhir_client, story):
    study = story["study"]
    c = fhir_client("radiologist")
    res = body(c.get(f"/fhir/ImagingStudy/{study.pk}"))
    assert res["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_instance_uid}"}
    assert res["modality"] == [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]
    assert res["numberOfSeries"] == 2 and res["numberOfInstances"] == 6
    assert len(res["series"]) == 2 and len(res["series"][0]["instance"]) == 3
    assert res["series"][0]["modality"]["code"] == "CT"
    endpoint = res["contained"][0]
    assert endpoint["resourceType"] == "Endpoint" and endpoint["address"] == "http://testserver/dicomweb"
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert res["endpoint"] == [{"reference": "#dicomweb"}]
    assert res["basedOn"] == [{"reference": f"ServiceRequest/{story['procedure'].pk}"}]
    for query in [
        f"identifier=urn:dicom:uid|urn:oid:{study.study_instance_uid}",
        f"identifier={story['order'].accession_number}",
        f"patient={story['patient'].pk}",
        f"basedon=ServiceRequest/{story['procedure'].pk}",
        "modality=CT",
        "modality=http://dicom.nema.org/resources/ontology/DCM|CT",
    ]:
        b = body(c.get(f"/fhir/ImagingStudy?{query}"))
        assert [e["resource"]["id"] for e in b.get("entry", [])] == [str(study.pk)], query
    assert body(c.get("/fhir/ImagingStudy?modality=MR"))["total"] == 0


def test_diagnostic_report_final_with_pdf_and_study_link(fhir_client, story):
    report = story["report"]
    c = fhir_client("radiologist")
    res = body(c.get(f"/fhir/DiagnosticReport/{report.pk}"))
    assert res["status"] == "final"
    assert res["conclusion"] == "未见异常。No acute disease."
    assert res["imagingStudy"] == [{"reference": f"ImagingStudy/{story['study'].pk}"}]
    assert res["basedOn"] == [{"reference": f"ServiceRequest/{story['procedure'].pk}"}]
    pdf = res["presentedForm"][0]
    assert pdf["contentType"] == "application/pdf"
    assert pdf["url"] == f"http://testserver/api/v1/reports/{report.pk}/pdf/"
    served = fhir_client("front_desk").get(pdf["url"], HTTP_ACCEPT="*/*")
    assert served.status_code == 200 and served.content.startswith(b"%PDF")
    assert base64.b64decode(pdf["data"]).startswith(b"%PDF")
    text = base64.b64decode(res["presentedForm"][1]["data"]).decode()
    assert "双肺清晰" in text
    listed = body(c.get(f"/fhir/DiagnosticReport?patient={story['patient'].pk}&status=final"))
    assert listed["total"] == 1
    assert "data" not in listed["entry"][0]["resource"]["presentedForm"][0]  # search: url only
    assert body(c.get("/fhir/DiagnosticReport?status=preliminary"))["total"] == 0


def test_diagnostic_report_amended_and_preliminary(fhir_client, story, users):
    from reports import services

    from .conftest import PASSWORD

    report = story["report"]
    services.report_add_addendum(
        report=report, actor=users["reviewer"], text="补充：无变化。", password=PASSWORD
    )
    c = fhir_client("reviewer")
    res = body(c.get(f"/fhir/DiagnosticReport/{report.pk}?_format=json"))
    assert res["status"] == "amended"
    assert "补充" in base64.b64decode(res["presentedForm"][1]["data"]).decode()


def test_drafts_are_not_exposed(fhir_client, story, catalog, users):
    from reports import services
    from scheduling import services as sched
    from tests.factories import make_order, next_slot

    proc = make_order(
        patient=story["patient"],
        station=catalog["station"],
        procedure_type=catalog["procedure"],
        start=next_slot(300),
    ).procedures.get()
    sched.procedure_start(procedure=proc)
    sched.procedure_complete(procedure=proc)
    draft = services.report_claim(procedure=proc, actor=users["radiologist"])
    c = fhir_client("radiologist")
    r = c.get(f"/fhir/DiagnosticReport/{draft.pk}")
    assert r.status_code == 404
    assert body(r)["resourceType"] == "OperationOutcome"
    listed = body(c.get(f"/fhir/DiagnosticReport?patient={story['patient'].pk}"))
    assert [e["resource"]["id"] for e in listed["entry"]] == [str(story["report"].pk)]


def test_every_read_and_search_is_audited(fhir_client, story):
    c = fhir_client("radiologist")
    before = AuditEvent.objects.count()
    c.get(f"/fhir/Patient/{story['patient'].pk}")
    c.get(f"/fhir/ImagingStudy?patient={story['patient'].pk}")
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [e.action for e in events] == ["patient.view", "study.search"]
    assert all(e.detail["interface"] == "fhir" for e in events)
    assert events[0].patient_ref == story["patient"].pk and events[0].actor_username == "u_radiologist"
    assert events[1].patient_ref == story["patient"].pk
    assert events[1].detail["returned"] == [story["study"].pk]


def test_search_query_count_does_not_grow_with_results(
    fhir_client, story, catalog, django_assert_max_num_queries
):
    from tests.factories import make_order, next_slot

    for i in range(5):
        make_order(
            patient=story["patient"],
            station=catalog["station"],
            procedure_type=catalog["procedure"],
            start=next_slot(15 * (i + 20)),
        )
    c = fhir_client("admin")
    for name in ["ServiceRequest", "Appointment", "Patient", "ImagingStudy", "DiagnosticReport"]:
        with django_assert_max_num_queries(12):
            r = c.get(f"/fhir/{name}?_count=50")
        assert r.status_code == 200, name
        assert body(r)["total"] >= 1, name
