"""Playwright: the equipment, materials and audit pages as the department head uses them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from department.models import MaterialItem
from department.services import material_item_upsert
from scheduling.models import StationDowntime
from tests.factories import PatientFactory, StationFactory

READY = "() => [...document.querySelectorAll('[data-figure] canvas')].every(c => c.dataset.ready === '1')"


@pytest.mark.browser
def test_record_and_end_a_downtime(page_for):
    st = StationFactory(ae_title="CTB", modality="CT")
    page = page_for("dept_head")
    page.goto(f"{page.base_url}/department/equipment/")
    page.wait_for_function(READY)
    start = timezone.localtime() - timedelta(minutes=30)
    form = page.locator('[data-testid="downtime-form"]')
    form.locator('select[name="station"]').select_option(str(st.pk))
    form.locator('input[name="start"]').fill(start.strftime("%Y-%m-%dT%H:%M"))
    form.locator('input[name="end"]').fill((start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    form.locator('input[name="reason"]').fill("Tube replacement")
    form.locator('button[type="submit"]').click()
    page.wait_for_selector("text=Downtime recorded")
    row = page.locator('[data-testid="stations"] tr', has_text="CTB")
    assert "Down" in row.inner_text()
    assert "Tube replacement" in page.locator('[data-testid="downtimes"]').inner_text()
    page.locator('[data-testid="downtimes"] button', has_text="End now").click()
    page.wait_for_selector("text=Downtime ended")
    assert "Available" in page.locator('[data-testid="stations"] tr', has_text="CTB").inner_text()
    assert StationDowntime.objects.get(station=st).end <= timezone.now()


@pytest.mark.browser
def test_stock_in_clears_the_low_stock_warning(page_for):
    material_item_upsert(
        code="FILMX", name="Film X", kind="film", unit="sheet", initial_stock=3, low_stock_threshold=10
    )
    page = page_for("dept_head")
    page.goto(f"{page.base_url}/department/materials/")
    assert "FILMX" in page.locator('[data-testid="low-stock"]').inner_text()
    form = page.locator('[data-testid="receipt-form"]')
    form.locator('select[name="item"]').select_option(label="FILMX Film X")
    form.locator('input[name="quantity"]').fill("50")
    form.locator('input[name="lot_number"]').fill("LOT-7")
    form.locator('button[type="submit"]').click()
    page.wait_for_selector("text=Stock received")
    assert page.locator('[data-testid="low-stock"]').count() == 0
    assert MaterialItem.objects.get(code="FILMX").stock_level == 53
    page.wait_for_function(READY)
    chart = page.evaluate(
        "() => Chart.getChart(document.querySelector('[data-figure=\"materials\"] canvas')).data.labels"
    )
    assert "FILMX" in chart


@pytest.mark.browser
def test_audit_search_by_patient(page_for, users):
    from audit.services import audit_record

    p = PatientFactory(patient_id="MRN777")
    audit_record(
        action="patient.view",
        actor=users["front_desk"],
        object_type="patient",
        object_id=p.pk,
        patient_id=p.pk,
    )
    page = page_for("dept_head")
    page.goto(f"{page.base_url}/audit/")
    page.locator('input[name="patient"]').fill("MRN777")
    page.locator('[data-testid="audit-search"] button[type="submit"]').click()
    results = page.locator('[data-testid="audit-results"] tbody tr')
    results.first.wait_for()
    assert results.count() == 1
    assert "u_front_desk" in results.first.inner_text() and "MRN777" in results.first.inner_text()
    assert AuditEvent.objects.filter(action="audit.search", patient_ref=p.pk).exists()
