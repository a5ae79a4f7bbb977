"""REST API: studies and the reconciliation queue."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pydicom.uid import generate_uid

from imaging import services
from imaging.models import ReceivedObject, ReconciliationItem, StudyLink
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.django_db


def test_reconciliation_api_lists_and_links(api_for, receive, users):
    patient = PatientFactory(patient_id="API-1", issuer="RIS")
    proc = make_order(patient=patient).procedures.select_related("order").get()
    uid = generate_uid()  # the modality made its own Study Instance UID
    receive(ct_dataset(study_uid=uid, accession=proc.order.accession_number, patient_id="API-1"))
    services.study_ingest(study_instance_uid=uid)
    assert api_for("radiologist").get("/api/v1/imaging/reconciliation/").status_code == 403
    api = api_for("technologist")
    listing = api.get("/api/v1/imaging/reconciliation/").json()
    assert listing["count"] == 1 and listing["results"][0]["reason"] == "study_uid_mismatch"
    item_id = listing["results"][0]["id"]
    r = api.post(f"/api/v1/imaging/reconciliation/{item_id}/link/", {"procedure": proc.pk, "note": "own UID"})
    assert r.status_code == 200 and r.json()["resolved_at"]
    link = StudyLink.objects.get()
    assert (link.requested_procedure_id, link.linked_by) == (proc.pk, users["technologist"])
    assert api.get("/api/v1/imaging/reconciliation/").json()["count"] == 0
    again = api.post(f"/api/v1/imaging/studies/{link.study_id}/unlink/", {"reason": ""})
    assert again.status_code == 400
    assert (
        api.post(f"/api/v1/imaging/studies/{link.study_id}/unlink/", {"reason": "wrong"}).status_code == 200
    )
    assert ReconciliationItem.objects.filter(resolved_at__isnull=True, reason="unlinked").count() == 1


def test_study_list_query_count_is_constant(api_for, receive):
    for _ in range(3):
        receive(ct_dataset())
    for uid in set(ReceivedObject.objects.values_list("study_instance_uid", flat=True)):
        services.study_ingest(study_instance_uid=uid)
    api = api_for("radiologist")
    api.get("/api/v1/imaging/studies/")  # warm caches (roles, session)
    with CaptureQueriesContext(connection) as few:
        assert api.get("/api/v1/imaging/studies/").json()["count"] == 3
    for _ in range(5):
        receive(ct_dataset())
    for uid in set(
        ReceivedObject.objects.filter(state="received").values_list("study_instance_uid", flat=True)
    ):
        services.study_ingest(study_instance_uid=uid)
    with CaptureQueriesContext(connection) as many:
        assert api.get("/api/v1/imaging/studies/").json()["count"] == 8
    assert len(many) == len(few)
