"""Chromium: radiologist claims from the reading worklist, writes from a template and submits;
the reviewer signs with the password, downloads the PDF and signs an addendum."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports.models import Report, ReportRelease, ReportSnippet, ReportTemplate

from .conftest import PASSWORD


@pytest.mark.browser
def test_read_write_submit_sign_release_addendum(page_for, make_exam, users):
    stat = make_exam(priority="STAT")
    routine = make_exam(priority="ROUTINE")
    ReportTemplate.objects.create(
        name="CT chest EN",
        modality="CT",
        body_part="CHEST",
        findings="Lungs clear.",
        impression="Normal chest CT.",
    )
    ReportTemplate.objects.create(
        name="CT 胸部 中文",
        modality="CT",
        body_part="",
        findings="双肺纹理清晰，未见异常密度影。",
        impression="胸部CT未见明显异常。",
    )
    ReportSnippet.objects.create(label="No pneumothorax", section="findings", text=" No pneumothorax.")
    acc = stat.order.accession_number

    # --- radiologist
    page = page_for("radiologist")
    page.goto(f"{page.base_url}/reading/")
    rows = page.locator('[data-testid="wl-row"]')
    assert rows.count() == 2
    assert rows.first.get_attribute("data-accession") == acc  # STAT first
    assert routine.order.accession_number == rows.nth(1).get_attribute("data-accession")
    rows.first.locator('[data-testid="claim"]').click()
    page.wait_for_url(re.compile(r"/reports/\d+/edit/"))
    assert acc in page.locator('[data-testid="patient-banner"]').inner_text()
    # The most specific template was preloaded; switch to the Chinese one.
    assert page.input_value("#id_findings") == "Lungs clear."
    page.once("dialog", lambda d: d.accept())
    page.select_option('[data-testid="template-select"]', label="CT 胸部 中文")
    page.click('[data-testid="apply-template"]')
    assert page.input_value("#id_findings") == "双肺纹理清晰，未见异常密度影。"
    page.fill("#id_findings", "右肺上叶见一肺结节，直径约6mm。")
    page.click("#id_findings")
    page.keyboard.press("End")
    page.click('.snippet:has-text("No pneumothorax")')
    assert page.input_value("#id_findings") == "右肺上叶见一肺结节，直径约6mm。 No pneumothorax."
    # Autosave kicks in after a pause in typing.
    page.wait_for_selector('[data-testid="autosave-status"]:has-text("Saved")', timeout=10_000)
    report = Report.objects.get(requested_procedure=stat)
    expected = "右肺上叶见一肺结节，直径约6mm。 No pneumothorax."
    for _ in range(50):  # the autosave of the last keystroke may still be on its way
        report.refresh_from_db()
        if report.findings == expected:
            break
        page.wait_for_timeout(200)
    assert report.findings == expected
    page.keyboard.press("Control+Enter")  # keyboard submit
    page.wait_for_url(re.compile(r"/reading/"))
    report.refresh_from_db()
    assert report.status == "preliminary"

    # --- reviewer
    rp = page_for("reviewer")
    rp.goto(f"{rp.base_url}/review/")
    rp.locator(f'[data-testid="rq-row"][data-accession="{acc}"] [data-testid="open-review"]').click()
    rp.fill("#id_password", "wrong password")
    rp.click('[data-testid="sign"]')
    assert rp.locator(".messages").inner_text().lower().find("password") >= 0
    report.refresh_from_db()
    assert report.status == "preliminary"
    rp.fill("#id_password", PASSWORD)
    rp.click('[data-testid="sign"]')
    rp.wait_for_url(re.compile(rf"/reports/{report.pk}/$"))
    assert rp.locator('[data-testid="report-status"]').inner_text() == "Final"
    assert "verified" in rp.locator('[data-testid="signatures"]').inner_text()

    with rp.expect_download() as info:
        rp.click('[data-testid="download-pdf"]')
    path = info.value.path()
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", path, "-"], capture_output=True, check=True
        ).stdout
        assert "右肺上叶见一肺结节" in text.decode()
    assert ReportRelease.objects.filter(report=report, kind="download", actor=users["reviewer"]).exists()

    rp.fill("#id_text", "补充：与外院片比较，结节无变化。")
    rp.locator('[data-testid="addendum-form"] #id_password').fill(PASSWORD)
    rp.click('[data-testid="sign-addendum"]')
    rp.wait_for_selector('[data-testid="addendum"]')
    assert "结节无变化" in rp.locator('[data-testid="addendum"]').inner_text()
    assert "右肺上叶见一肺结节" in rp.locator('[data-testid="final-findings"]').inner_text()
    assert rp.locator('[data-testid="report-status"]').inner_text() == "Amended"
    report.refresh_from_db()
    assert report.status == "amended" and report.signatures.count() == 2


@pytest.mark.browser
def test_reading_worklist_refreshes_itself(page_for, make_exam, settings):
    settings.RIS_READING_WORKLIST_REFRESH_SECONDS = 2
    first = make_exam()
    page = page_for("radiologist")
    page.goto(f"{page.base_url}/reading/")
    assert page.locator('[data-testid="wl-row"]').count() == 1
    page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    stat = make_exam(priority="STAT")
    page.wait_for_selector(
        f'[data-testid="wl-row"][data-accession="{stat.order.accession_number}"]', timeout=10_000
    )
    rows = page.locator('[data-testid="wl-row"]')
    assert rows.first.get_attribute("data-accession") == stat.order.accession_number
    assert rows.nth(1).get_attribute("data-accession") == first.order.accession_number
    assert page.evaluate("window.__marker") == 1
