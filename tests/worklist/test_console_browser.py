"""The console shows an exam move to "in progress" after a modality's MPPS N-CREATE, without reload."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from tests.factories import StationFactory, make_order

from .mpps_data import for_procedure, n_create
from .test_console import today_slot
from .test_dicom_mpps import mpps_scp  # noqa: F401  (fixture)


@pytest.mark.browser
@pytest.mark.dicom
def test_console_follows_mpps_without_reload(page_for, mpps_scp, settings):  # noqa: F811
    settings.RIS_CONSOLE_POLL_SECONDS = 1
    proc = make_order(station=StationFactory(ae_title="CT1"), start=today_slot()).procedures.get()
    accession = proc.order.accession_number
    page = page_for("technologist")
    page.goto(f"{page.base_url}/console/?station=CT1")
    item = page.locator(f'[data-testid="console-item"][data-accession="{accession}"]')
    assert item.get_attribute("data-status") == "scheduled"
    assert page.locator('[data-testid="console-col-scheduled"]').get_by_text(accession).is_visible()
    page.evaluate("window.__notReloaded = true")

    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate(mpps_scp.host, mpps_scp.port, ae_title=mpps_scp.ae_title)
    assert assoc.is_established
    try:
        status, _ = assoc.send_n_create(
            n_create(for_procedure(proc)), ModalityPerformedProcedureStep, generate_uid()
        )
    finally:
        assoc.release()
    assert status.Status == 0x0000

    moved = page.locator(f'[data-testid="console-col-in_progress"] [data-accession="{accession}"]')
    moved.wait_for(state="visible", timeout=10_000)
    assert moved.get_attribute("data-status") == "in_progress"
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path="/tmp/mpps_console.png", full_page=True)

    # The exam page shows the MPPS detail and offers only the actions the state allows.
    moved.get_by_role("link").click()
    page.locator('[data-testid="mpps-status"]').wait_for()
    assert page.locator('[data-testid="exam-status"]').get_attribute("data-status") == "in_progress"
    assert page.locator('[data-testid="action-complete"]').is_visible()
    assert page.locator('[data-testid="action-start"]').count() == 0
    page.screenshot(path="/tmp/mpps_exam.png", full_page=True)


@pytest.mark.browser
def test_manual_exam_for_a_modality_without_mpps(page_for):
    station = StationFactory(ae_title="DX1", modality="DX")
    proc = make_order(station=station, start=today_slot()).procedures.get()
    page = page_for("technologist")
    page.goto(f"{page.base_url}/console/?station=DX1")
    page.locator(f'[data-accession="{proc.order.accession_number}"] a').click()
    page.locator('[data-testid="action-start"]').click()
    page.locator('[data-testid="exam-status"][data-status="in_progress"]').wait_for()
    page.locator('[data-testid="action-complete"]').click()
    page.locator('[data-testid="exam-status"][data-status="completed"]').wait_for()
    form = page.locator('[data-testid="note-form"]')
    form.locator('input[name="films_printed"]').fill("2")
    form.locator('textarea[name="text"]').fill("Two views, good quality")
    form.get_by_role("button").click()
    assert page.locator('[data-testid="exam-note"]').filter(has_text="Two views, good quality").is_visible()
    page.goto(f"{page.base_url}/console/?station=DX1")
    done = page.locator(
        f'[data-testid="console-col-completed"] [data-accession="{proc.order.accession_number}"]'
    )
    assert done.is_visible()
    proc.refresh_from_db()
    assert proc.status == "completed"
