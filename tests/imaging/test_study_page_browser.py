"""Chromium: the study page shows names and times as people read them, without overlapping text;
printing a worklist prints the list, not its filters and buttons."""

from __future__ import annotations

import pytest

from imaging import services
from imaging.models import Study
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_study_page_formats_pn_and_tm_without_overlap(page_for, receive, language):
    patient = PatientFactory(patient_id="MRN-S1", issuer="RIS", family_name="Wang", given_name="XiaoDong")
    proc = make_order(patient=patient).procedures.select_related("order").get()
    ds = ct_dataset(
        study_uid=proc.study_instance_uid,
        accession=proc.order.accession_number,
        patient_id="MRN-S1",
        patient_name="Wang^XiaoDong=王^小东",
    )
    ds.StudyTime = "120000"
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    page = page_for("radiologist", language=language)
    page.goto(f"{page.base_url}/imaging/studies/{Study.objects.get().pk}/")
    name = page.get_by_test_id("study-patient-name").inner_text()
    assert name == "王小东 (WANG XiaoDong)"
    head = page.get_by_test_id("study-head").inner_text()
    assert "12:00:00" in head and "120000" not in head
    # no fact runs into its neighbour (the long UID used to)
    overlaps = page.evaluate(
        """() => {
          const boxes = [...document.querySelectorAll('[data-testid="study-head"] dl.facts dd')]
            .map(d => d.getBoundingClientRect());
          let n = 0;
          for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i], b = boxes[j];
            if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) n++;
          }
          const wide = [...document.querySelectorAll('[data-testid="study-head"] dl.facts dd')]
            .filter(d => d.scrollWidth > d.clientWidth + 1).length;
          return n + wide;
        }"""
    )
    assert overlaps == 0


def test_printing_the_console_prints_only_the_board(page_for, settings):
    settings.RIS_CONSOLE_POLL_SECONDS = 3600  # nothing in flight at teardown
    page = page_for("technologist")
    page.goto(f"{page.base_url}/console/")
    page.emulate_media(media="print")
    assert not page.get_by_test_id("console-filter").is_visible()
    assert not page.locator(".topbar").is_visible()
    assert page.get_by_test_id("console-board").is_visible()
