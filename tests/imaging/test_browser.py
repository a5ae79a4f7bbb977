"""Chromium: the workbench renders hostile DICOM text escaped, and the link flow works by clicks."""

from __future__ import annotations

import pytest

from imaging import services
from imaging.models import StudyLink
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert(1)</script>^<b>Bold</b>"  # no '=': that separates PN groups


def test_hostile_patient_name_is_escaped_and_link_by_clicks(page_for, receive):
    patient = PatientFactory(patient_id="MRN-B1", issuer="RIS")
    proc = make_order(patient=patient).procedures.select_related("order").get()
    ds = ct_dataset(
        study_uid=proc.study_instance_uid,
        accession=proc.order.accession_number,
        patient_id="NOT-THE-SAME",
        patient_name=HOSTILE,
    )
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)

    page = page_for("technologist")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(page.base_url + "/imaging/reconciliation/")
    cell = page.get_by_test_id("patient-name").first
    assert cell.inner_text() == HOSTILE  # shown literally
    assert page.locator("main b").count() == 0  # no markup injected
    cell.click()
    assert page.get_by_test_id("study-patient-name").inner_text() == HOSTILE
    page.get_by_test_id("candidate-row").first.get_by_test_id("link-button").click()
    dialog = page.get_by_test_id("confirm-link")
    assert dialog.is_visible()
    assert page.get_by_test_id("patient-warning").is_visible()
    page.get_by_test_id("confirm-link-button").click()
    page.wait_for_url("**/imaging/studies/*/")
    assert "linked" in page.get_by_test_id("link-state").inner_text()
    assert dialogs == []  # the script never ran
    assert StudyLink.objects.get().requested_procedure_id == proc.pk
