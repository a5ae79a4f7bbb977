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
    assert acc in page.locator('[data-testid="exam-order"]').inner_text()
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


@pytest.mark.browser
def test_return_critical_search_and_peer_review_pages(page_for, make_report, users):
    import random

    from reports import services
    from reports.models import CriticalResult, PeerReview
    from tests.factories import UserFactory

    # Review returns a report; the author sees the comment (in Chinese UI).
    prelim = make_report("preliminary", findings="右下肺见斑片影。", impression="肺炎可能。")
    rp = page_for("reviewer", language="zh-hans")
    rp.goto(f"{rp.base_url}/reports/{prelim.pk}/review/")
    rp.fill('[data-testid="return-form"] textarea', "请补充与既往片比较")
    rp.click('[data-testid="return"]')
    rp.wait_for_url(re.compile(r"/review/$"))
    assert "已退回报告医师" in rp.locator(".messages").inner_text()
    rad = page_for("radiologist", language="zh-hans")
    rad.goto(f"{rad.base_url}/reading/?quick=returned")
    assert rad.locator('[data-testid="wl-row"]').count() == 1
    rad.locator('[data-testid="claim"]').click()
    assert "请补充与既往片比较" in rad.locator('[data-testid="return-comment"]').inner_text()

    # Critical result: flag on the editor, then notify and acknowledge on the list.
    rad.select_option('[data-testid="critical-form"] select', "1")
    rad.fill('[data-testid="critical-form"] input[name="finding"]', "张力性气胸")
    rad.click('[data-testid="critical-form"] button')
    assert "张力性气胸" in rad.locator('[data-testid="critical-item"]').inner_text()
    rad.goto(f"{rad.base_url}/critical/")
    row = rad.locator('[data-testid="critical-list"] tbody tr').first
    row.locator('input[name="recipient"]').fill("急诊科 王医生")
    row.locator('select[name="method"]').select_option("phone")
    row.locator('form[action$="/notify/"] button').click()
    row = rad.locator('[data-testid="critical-list"] tbody tr').first
    row.locator('input[name="acknowledged_by"]').fill("王医生")
    row.locator('input[name="read_back"]').check()
    row.locator('form[action$="/acknowledge/"] button').click()
    rad.wait_for_selector("text=确认已登记")
    critical = CriticalResult.objects.get(report=prelim)
    assert critical.recipient == "急诊科 王医生" and critical.method == "phone"
    assert critical.acknowledged_by == "王医生" and critical.read_back

    # Search finds the Chinese term inside a sentence among signed reports only.
    signed = make_report("final", findings="右肺上叶尖段见一肺结节，约8mm。", impression="肺结节。")
    fd = page_for("front_desk")
    fd.goto(f"{fd.base_url}/reports/search/")
    fd.fill('input[name="q"]', "肺结节")
    fd.press('input[name="q"]', "Enter")
    results = fd.locator('[data-testid="search-results"]')
    results.wait_for()
    assert signed.requested_procedure.order.accession_number in results.inner_text()
    assert prelim.requested_procedure.order.accession_number not in results.inner_text()

    # Peer review: blinded scoring by a colleague, results for the department head.
    peer = UserFactory(username="peer_reader", role="radiologist")
    review = services.peer_review_sample(share=1.0, rng=random.Random(3))[0]
    assert review.reviewer == peer
    page = page_for("radiologist")
    page.context.clear_cookies()
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(peer)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": page.base_url,
            }
        ]
    )
    page.goto(f"{page.base_url}/peer-review/")
    page.locator('[data-testid="peer-reviews"] a.button').first.click()
    blinded = page.locator('[data-testid="blinded-report"]').inner_text()
    assert "肺结节" in blinded and users["reviewer"].username not in page.content()
    page.check('input[name="score"][value="2a"]')
    page.fill('textarea[name="comment"]', "Second nodule in the left lower lobe not mentioned.")
    page.click('[data-testid="peer-score-form"] button')
    page.wait_for_url(re.compile(r"/peer-review/$"))
    assert PeerReview.objects.get(pk=review.pk).score == "2a"
    head = page_for("dept_head")
    head.goto(f"{head.base_url}/peer-review/results/")
    assert "50.0" not in head.locator('[data-testid="peer-results"]').inner_text()
    assert "100.0 %" in head.locator('[data-testid="peer-results"]').inner_text()
