"""Chromium: what a reviewer sees is what is signed; unsaved edits are never dropped silently."""

from __future__ import annotations

import re

import pytest

from reports.models import Report
from tests.factories import PatientFactory

from .conftest import PASSWORD


def _leave_prompts(page) -> list[str]:
    """Record beforeunload prompts and answer "stay on this page"."""
    seen: list[str] = []

    def on_dialog(dialog):
        seen.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


@pytest.mark.browser
def test_approve_and_sign_signs_the_text_on_screen(page_for, make_report):
    report = make_report("preliminary", findings="Lungs clear.", impression="No acute disease.")
    page = page_for("reviewer")
    page.goto(f"{page.base_url}/reports/{report.pk}/review/")
    findings = page.locator("#id_findings")
    findings.fill("")
    findings.press_sequentially("Small nodule in the right upper lobe.")
    assert page.locator('[data-testid="unsaved-note"]').is_visible()
    page.fill("#id_password", PASSWORD)
    page.click('[data-testid="sign"]')  # no "Save my edits" first
    page.wait_for_url(re.compile(rf"/reports/{report.pk}/\?changes=1$"))
    report.refresh_from_db()
    assert report.status == "final"
    assert report.findings == "Small nodule in the right upper lobe."
    final = report.signatures.get().version
    assert final.findings == "Small nodule in the right upper lobe."
    changes = page.locator('[data-testid="review-changes"]')
    assert changes.get_attribute("open") is not None
    assert "upper lobe" in changes.inner_text()


@pytest.mark.browser
def test_wrong_password_keeps_the_edits_on_screen(page_for, make_report):
    report = make_report("preliminary", findings="Lungs clear.")
    page = page_for("reviewer", language="zh-hans")
    page.goto(f"{page.base_url}/reports/{report.pk}/review/")
    page.fill("#id_findings", "右肺上叶小结节。")
    page.fill("#id_password", "wrong")
    page.press("#id_password", "Enter")  # Enter signs, as before
    page.wait_for_selector(".messages")
    assert page.input_value("#id_findings") == "右肺上叶小结节。"
    report.refresh_from_db()
    assert report.status == "preliminary" and report.findings == "Lungs clear."


@pytest.mark.browser
def test_leaving_the_review_with_unsaved_edits_asks_first(page_for, make_report):
    report = make_report("preliminary")
    page = page_for("reviewer")
    page.goto(f"{page.base_url}/reports/{report.pk}/review/")
    prompts = _leave_prompts(page)
    page.locator("#id_findings").press_sequentially(" Edited.")
    page.fill('[data-testid="return-form"] textarea', "Please check the lungs.")
    page.click('[data-testid="return"]')
    _wait(page, lambda: prompts, "beforeunload prompt")
    assert prompts[0] == "beforeunload"
    assert Report.objects.get(pk=report.pk).status == "preliminary"  # stayed; nothing lost
    # Having stayed, the button still works (asks again rather than doing nothing).
    page.click('[data-testid="return"]')
    _wait(page, lambda: len(prompts) == 2, "second beforeunload prompt")


@pytest.mark.browser
def test_report_editor_and_addendum_ask_before_leaving(page_for, make_report):
    draft = make_report("draft")
    page = page_for("radiologist")
    page.goto(f"{page.base_url}/reports/{draft.pk}/edit/")
    prompts = _leave_prompts(page)
    page.locator("#id_findings").press_sequentially(" Unsaved words.")
    page.click("text=Release my claim")
    _wait(page, lambda: prompts, "beforeunload prompt on the editor")
    assert "Unsaved words." in page.input_value("#id_findings")
    # Once the autosave has stored the text, leaving no longer asks (and no request is left
    # in flight when the test ends).
    page.wait_for_function(
        "() => /Saved|已保存/.test(document.querySelector('[data-testid=autosave-status]').textContent)",
        timeout=30_000,
    )
    page.click("text=Release my claim")
    page.wait_for_url(re.compile(r"/reading/"))
    assert len(prompts) == 1
    assert "Unsaved words." in Report.objects.get(pk=draft.pk).findings

    final = make_report("final")
    rp = page_for("reviewer")
    rp.goto(f"{rp.base_url}/reports/{final.pk}/")
    prompts = _leave_prompts(rp)
    rp.locator("#id_text").press_sequentially("An addendum not yet signed.")
    rp.locator("nav.mainnav a").first.click()
    _wait(rp, lambda: prompts, "beforeunload prompt on the addendum")
    assert rp.input_value("#id_text") == "An addendum not yet signed."


@pytest.mark.browser
def test_patient_edit_asks_before_leaving(page_for):
    patient = PatientFactory()
    page = page_for("front_desk")
    page.goto(f"{page.base_url}/patients/{patient.pk}/edit/")
    prompts = _leave_prompts(page)
    page.locator('[data-testid="patient-form"] input[type=text]').first.press_sequentially("x")
    page.locator("nav.mainnav a").first.click()
    _wait(page, lambda: prompts, "beforeunload prompt on the patient form")
    page.wait_for_load_state("networkidle")  # e.g. the name preview request, before teardown


def _wait(page, condition, what: str, timeout: float = 15.0) -> None:
    """Poll with Playwright's own wait, so its event loop delivers the dialog events meanwhile."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(50)
