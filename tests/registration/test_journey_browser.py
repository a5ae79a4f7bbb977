"""The front-desk journey in Debian Chromium, in English and in Simplified Chinese.

register 王小东 → pinyin shown → order a CT → book a free slot → the slot is no longer
offered → check in → the board shows the patient arrived.
"""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from registration.models import Patient
from scheduling.models import Order, ProcedureStatus
from tests.factories import ProcedureTypeFactory, StationFactory

pytestmark = pytest.mark.browser


def tr(language: str, text: str) -> str:
    with translation.override(language):
        return translation.gettext(text)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_front_desk_journey(page_for, language):
    from playwright.sync_api import expect

    station = StationFactory(ae_title="CTJ1", name="CT Journey", modality="CT", room="CT-9")
    ptype = ProcedureTypeFactory(
        code_value="CTJCHEST",
        code_meaning="CT Chest journey",
        modality="CT",
        body_part="CHEST",
        duration_minutes=15,
    )
    if language != "en":
        # The catalog is compiled: the page really is in Chinese.
        assert tr(language, "Register a patient") != "Register a patient"
    page = page_for("front_desk", language=language)
    base = page.base_url

    # Find (nobody yet) → register.
    page.goto(base + "/patients/?q=王小东")
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.get_by_test_id("no-results")).to_be_visible()
    page.get_by_test_id("no-results").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(tr(language, "Register a patient"))
    page.locator("#id_chinese_name").fill("")
    page.locator("#id_chinese_name").press_sequentially("王小东", delay=20)
    expect(page.locator("#id_family_name")).to_have_value("Wang")
    expect(page.locator("#id_given_name")).to_have_value("XiaoDong")
    expect(page.get_by_test_id("pinyin-preview")).to_contain_text("Wang / XiaoDong")
    page.locator("#id_birth_date").fill("1985-03-14")
    page.locator("input[name=sex][value=M]").check()
    page.locator("#id_phone").fill("13800138000")
    page.get_by_test_id("save-patient").click()
    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    patient = Patient.objects.get(ideographic_family="王", ideographic_given="小东")
    assert (patient.family_name, patient.given_name) == ("Wang", "XiaoDong")
    expect(page.get_by_test_id("patient-latin")).to_have_text("WANG XiaoDong")

    # Order a CT and book the first free slot.
    page.get_by_test_id("new-order").click()
    page.get_by_test_id("procedure-type").select_option(str(ptype.pk))
    expect(page.get_by_test_id("station")).to_have_value(str(station.pk), timeout=15_000)
    first_free = page.get_by_test_id("slot").first
    expect(first_free).to_be_attached()
    start_value = first_free.get_attribute("value")
    page.locator(f'label.slot:has(input[value="{start_value}"])').click()
    page.locator("#id_reason").fill("Cough for three weeks")
    page.get_by_test_id("book").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+/$"))
    order = Order.objects.get(patient=patient)
    proc = order.procedures.get()
    step = proc.steps.get()
    expect(page.get_by_test_id("accession-number")).to_have_text(order.accession_number)
    expect(page.get_by_test_id("rp-id")).to_have_text(proc.requested_procedure_id)
    expect(page.get_by_test_id("sps-id")).to_have_text(step.sps_id)
    expect(page.get_by_test_id("study-uid")).to_have_text(proc.study_instance_uid)
    order_url = page.url

    # The booked slot is no longer offered.
    page.goto(
        f"{base}/patients/{patient.pk}/order/?procedure_type={ptype.pk}&station={station.pk}&day={start_value[:10]}"
    )
    # (Near midnight the booked slot may have been the day's last one: wait for the slot grid,
    # not for another free slot.)
    expect(page.get_by_test_id("slots")).to_be_attached()
    assert page.locator(f'input[name=start][value="{start_value}"]').count() == 0

    # Check in.
    page.goto(order_url)
    page.get_by_test_id("check-in").click()
    expect(page.get_by_test_id("procedure-status")).to_have_text(tr(language, "Arrived"))
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.ARRIVED

    # The board shows the patient arrived.
    page.goto(base + "/board/")
    arrived = page.get_by_test_id("col-arrived")
    expect(arrived.get_by_test_id("board-item").filter(has_text="王小东")).to_be_visible()
    expect(arrived.get_by_role("heading")).to_contain_text(tr(language, "Arrived"))
    expect(page.get_by_test_id("col-scheduled").get_by_test_id("board-item")).to_have_count(0)


def test_language_switch(page_for):
    from playwright.sync_api import expect

    page = page_for("front_desk", language="en")
    page.goto(page.base_url + "/patients/")
    assert tr("zh-hans", "Find a patient") != "Find a patient"
    expect(page.get_by_role("heading", level=1)).to_have_text("Find a patient")
    page.get_by_test_id("language").select_option("zh-hans")
    expect(page.get_by_role("heading", level=1)).to_have_text(tr("zh-hans", "Find a patient"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert "/patients/" in page.url


def test_board_refreshes_itself(page_for, settings):
    """The board polls; a check-in made elsewhere moves the card without a reload."""
    from playwright.sync_api import expect

    from scheduling.services import procedure_mark_arrived
    from tests.factories import PatientFactory, make_order

    settings.RIS_BOARD_POLL_SECONDS = 1
    station = StationFactory(ae_title="CTB1", modality="CT")
    ptype = ProcedureTypeFactory(code_value="CTB", modality="CT")
    patient = PatientFactory(
        ideographic_family="李", ideographic_given="娜", family_name="Li", given_name="Na"
    )
    proc = make_order(patient=patient, station=station, procedure_type=ptype, start=_soon()).procedures.get()
    page = page_for("technologist")
    page.goto(page.base_url + "/board/")
    expect(page.get_by_test_id("col-scheduled").get_by_test_id("board-item")).to_contain_text("李娜")
    marker = page.evaluate("() => { window.__noReload = true; return 1; }")
    procedure_mark_arrived(procedure=proc)
    expect(page.get_by_test_id("col-arrived").get_by_test_id("board-item")).to_contain_text(
        "李娜", timeout=10_000
    )
    expect(page.get_by_test_id("col-scheduled").get_by_test_id("board-item")).to_have_count(0)
    assert page.evaluate("() => window.__noReload") is True and marker == 1  # swapped, not reloaded


def _soon():
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.localtime().replace(second=0, microsecond=0) + timedelta(minutes=20)
    start -= timedelta(minutes=start.minute % 15)
    if start.date() != timezone.localdate():
        pytest.skip("too close to midnight for a booking today")
    return start


def test_double_click_registers_once(page_for):
    from playwright.sync_api import expect

    page = page_for("front_desk")
    page.goto(page.base_url + "/patients/new/")
    page.locator("#id_chinese_name").fill("张三")
    page.locator("#id_family_name").fill("Zhang")
    page.locator("#id_given_name").fill("San")
    page.locator("#id_birth_date").fill("1970-05-06")
    page.locator("input[name=sex][value=M]").check()
    # A double click fires two submit events: the second one must be cancelled.
    fired = page.evaluate(
        """() => { const f = document.querySelector('[data-testid=patient-form]');
                   const first = f.dispatchEvent(new Event('submit', {cancelable: true, bubbles: true}));
                   const second = f.dispatchEvent(new Event('submit', {cancelable: true, bubbles: true}));
                   if (first) { f.submit(); }
                   return [first, second]; }"""
    )
    assert fired == [True, False]
    expect(page).to_have_url(re.compile(r"/patients/\d+/$"))
    assert Patient.objects.filter(ideographic_family="张", ideographic_given="三").count() == 1


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_edit_reschedule_cancel_and_calendar(page_for, language):
    """The other front-desk pages in Chromium: edit, reschedule to the next day, cancel, calendar."""
    from playwright.sync_api import expect

    from tests.factories import PatientFactory, make_order, next_slot

    station = StationFactory(ae_title="CTR1", name="CT Resched", modality="CT")
    ptype = ProcedureTypeFactory(code_value="CTR", code_meaning="CT Head resched", modality="CT")
    patient = PatientFactory(
        ideographic_family="赵", ideographic_given="敏", family_name="Zhao", given_name="Min"
    )
    start = next_slot(60)
    proc = make_order(patient=patient, station=station, procedure_type=ptype, start=start).procedures.get()
    page = page_for("front_desk", language=language)
    base = page.base_url

    # Edit: the phone number.
    page.goto(f"{base}/patients/{patient.pk}/edit/")
    expect(page.locator("#id_chinese_name")).to_have_value("赵敏")
    page.locator("#id_phone").fill("13911112222")
    page.get_by_test_id("save-patient").click()
    expect(page.locator(".messages")).to_contain_text(tr(language, "Changes saved."))
    patient.refresh_from_db()
    assert patient.phone == "13911112222"

    # Reschedule to the next day with a reason, using the day button and a slot.
    page.goto(f"{base}/procedures/{proc.pk}/reschedule/")
    page.locator("#id_reason").fill(tr(language, "Patient request"))
    page.get_by_test_id("next-day").click()
    next_day = (start.date() + __import__("datetime").timedelta(days=1)).isoformat()
    expect(page.get_by_test_id("day")).to_have_value(next_day)
    target = page.get_by_test_id("slot").nth(4)
    value = target.get_attribute("value")
    assert value.startswith(next_day)
    page.locator(f'label.slot:has(input[value="{value}"])').click()
    page.get_by_test_id("confirm-reschedule").click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    step = proc.steps.get()
    assert step.start.astimezone(start.tzinfo).strftime("%Y-%m-%dT%H:%M") == value

    # The calendar of that day shows the patient in the new slot.
    page.goto(f"{base}/calendar/?station={station.pk}&day={next_day}")
    row = page.locator('tr[data-state="booked"]').filter(has_text="赵敏")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(value[11:16])

    # Cancel with a reason.
    page.goto(f"{base}/patients/{patient.pk}/")
    page.get_by_role("link", name=tr(language, "Cancel"), exact=True).click()
    page.locator("#id_reason").fill(tr(language, "Patient did not attend"))
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("procedure-status")).to_have_text(tr(language, "Cancelled"))
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.CANCELLED and proc.status_reason == tr(
        language, "Patient did not attend"
    )


def test_search_history_is_not_cached_in_the_browser(page_for):
    """htmx must not keep snapshots of patient lists in localStorage; back reloads the page."""
    from playwright.sync_api import expect

    from tests.factories import PatientFactory

    PatientFactory(family_name="Qian", given_name="Li")
    page = page_for("front_desk")
    page.goto(page.base_url + "/patients/")
    page.locator("#id_q").fill("qian")
    expect(page.get_by_test_id("search-results")).to_contain_text("QIAN")
    expect(page).to_have_url(re.compile(r"q=qian&"))
    # The next search pushes a new history entry: htmx would snapshot the page above.
    page.locator("#id_q").fill("qian li")
    expect(page).to_have_url(re.compile(r"q=qian(%20|\+)li&"))
    expect(page.get_by_test_id("search-results")).to_contain_text("QIAN")
    page.goto(page.base_url + "/board/")
    page.go_back()
    expect(page.get_by_test_id("search-results")).to_contain_text("QIAN")
    stored = page.evaluate(
        "() => JSON.stringify(Object.keys(localStorage).map(k => localStorage.getItem(k)))"
    )
    assert "QIAN" not in stored.upper()


def test_refused_form_keeps_input_and_focuses_first_error(page_for):
    from playwright.sync_api import expect

    page = page_for("front_desk", language="zh-hans")
    page.goto(page.base_url + "/patients/new/")
    page.locator("#id_chinese_name").fill("孙悟空")
    expect(page.locator("#id_family_name")).to_have_value("Sun")
    page.locator("#id_phone").fill("13700001111")
    page.get_by_test_id("save-patient").click()  # no birth date, no sex
    expect(page.locator("#id_birth_date")).to_be_focused()
    expect(page.locator("#id_phone")).to_have_value("13700001111")
    expect(page.locator("#id_chinese_name")).to_have_value("孙悟空")
    expect(page.locator("#id_given_name")).to_have_value("WuKong")
    assert not Patient.objects.exists()
