"""Fixtures for the FHIR facade: tokens per role and one patient's whole story
(王小东: order -> booked step -> study with series/instances -> signed report)."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import Client
from django.utils import timezone
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from imaging.models import Instance, ReceivedObject, Series, Study
from registration.services import patient_register
from reports import services as report_services
from reports.models import Report
from scheduling import services as sched
from tests.factories import ProcedureTypeFactory, StationFactory, make_order, next_slot

PASSWORD = "pw-Secret-123"  # tests.factories.UserFactory's password
PLACER = "urn:ris:placer-order-number"
ACCESSION = "urn:ris:accession-number"
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def tokens(users):
    return {role: Token.objects.create(user=user).key for role, user in users.items()}


@pytest.fixture
def fhir_client(tokens):
    """A Django test client speaking FHIR with the token of a role: ``fhir_client("front_desk")``."""

    def make(role: str | None = "front_desk") -> Client:
        headers = {"HTTP_ACCEPT": FHIR_JSON}
        if role:
            headers["HTTP_AUTHORIZATION"] = f"Token {tokens[role]}"
        return Client(**headers)

    return make


@pytest.fixture
def catalog(db):
    station = StationFactory(ae_title="CT01", modality="CT", room="R101")
    procedure = ProcedureTypeFactory(
        code_value="CTCHEST", coding_scheme="99RIS", code_meaning="CT chest", modality="CT"
    )
    return {"station": station, "procedure": procedure}


@pytest.fixture
def wang(users):
    """王小东, registered as at the front desk (pinyin derived: Wang XiaoDong)."""
    return patient_register(
        actor=users["front_desk"],
        patient_id="P-WXD-1",
        issuer="HIS",
        chinese_name="王小东",
        birth_date=date(1975, 6, 1),
        sex="M",
    )


def _study(proc, patient, *, series=2, instances=3) -> Study:
    study = Study.objects.create(
        study_instance_uid=proc.study_instance_uid,
        accession_number=proc.order.accession_number,
        study_date=timezone.localdate(),
        study_time="101500",
        description="CT chest",
        modalities="CT",
        dicom_patient_id=patient.patient_id,
        patient_name=patient.dicom_name,
        patient=patient,
        requested_procedure=proc,
        num_series=series,
        num_instances=series * instances,
    )
    now = timezone.now()
    for s in range(series):
        se = Series.objects.create(
            study=study,
            series_instance_uid=generate_uid(),
            series_number=s + 1,
            modality="CT",
            body_part="CHEST",
            description=f"Series {s + 1}",
            num_instances=instances,
        )
        for i in range(instances):
            uid = generate_uid()
            ro = ReceivedObject.objects.create(
                sop_instance_uid=uid,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                study_instance_uid=study.study_instance_uid,
                series_instance_uid=se.series_instance_uid,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                relpath=f"fake/{uid}.dcm",
                sha256="0" * 64,
                size=1,
                received_at=now,
                state="indexed",
            )
            Instance.objects.create(
                series=se,
                received_object=ro,
                sop_instance_uid=uid,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                instance_number=i + 1,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
            )
    return study


@pytest.fixture
def story(wang, catalog, users):
    """An order for 王小东 by placer number HIS-1001, imaged and reported (final)."""
    order = make_order(
        patient=wang,
        station=catalog["station"],
        procedure_type=catalog["procedure"],
        start=next_slot(),
        placer_order_number="HIS-1001",
        reason="Cough",
        requesting_physician="Li^Ming",
    )
    proc = order.procedures.get()
    sched.procedure_start(procedure=proc)
    sched.procedure_complete(procedure=proc)
    study = _study(proc, wang)
    rad, rev = users["radiologist"], users["reviewer"]
    report = report_services.report_claim(procedure=proc, actor=rad)
    report = report_services.report_save_draft(
        report=report, actor=rad, findings="双肺清晰。Lungs clear.", impression="未见异常。No acute disease."
    )
    report_services.report_submit(report=report, actor=rad)
    report_services.report_sign(report=report, actor=rev, password=PASSWORD)
    return {
        "patient": wang,
        "order": order,
        "procedure": proc,
        "step": proc.steps.get(),
        "study": study,
        "report": Report.objects.get(pk=report.pk),
    }


def service_request_body(
    *, patient, placer="HIS-2001", start=None, ae="CT01", code="CTCHEST", **extra
) -> dict:
    body = {
        "resourceType": "ServiceRequest",
        "identifier": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]
                },
                "system": PLACER,
                "value": placer,
            }
        ],
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": "urn:ris:coding-scheme:99RIS", "code": code}]},
        "subject": {"reference": f"Patient/{patient.pk}"},
        "occurrenceDateTime": (start or next_slot(120)).isoformat(),
        "requester": {"display": "Zhang^Wei"},
        "performer": [{"type": "Device", "identifier": {"system": "urn:ris:ae-title", "value": ae}}],
        "reasonCode": [{"text": "咳嗽两周 cough"}],
        "note": [{"text": "Allergic to iodine"}],
    }
    body.update(extra)
    return body
