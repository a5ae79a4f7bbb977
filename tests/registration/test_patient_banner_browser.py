"""Chromium: one patient banner — the same name, identifiers and safety badges on every page."""

from __future__ import annotations

import pytest

from registration.models import PregnancyStatus
from reports import services as rep
from scheduling import services as sched
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order

BADGES = ["alert-temporary", "alert-allergies", "alert-medical", "alert-pregnancy"]


def _banner(page, url: str) -> tuple[str, dict[str, str]]:
    page.goto(url)
    banner = page.locator('[data-testid="patient-banner"]')
    assert banner.count() == 1, url
    badges = {}
    for b in BADGES:
        loc = banner.locator(f'[data-testid="{b}"]')
        assert loc.count() == 1, (url, b)
        badges[b] = f"{loc.inner_text()}|{loc.get_attribute('class')}"
    return banner.locator("> :not(a):not(.pname)").all_inner_texts(), badges


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_page_shows_the_same_banner(page_for, users, language, settings):
    # No polling pages: nothing may still be in flight when the test ends.
    settings.RIS_CONSOLE_POLL_SECONDS = 3600
    settings.RIS_READING_WORKLIST_REFRESH_SECONDS = 3600
    patient = PatientFactory(
        family_name="Wang",
        given_name="XiaoDong",
        ideographic_family="王",
        ideographic_given="小东",
        allergies="Iodinated contrast",
        medical_alerts="Pacemaker",
        pregnancy_status=PregnancyStatus.DEFINITELY,
        is_temporary=True,
    )
    station = StationFactory(modality="CT")
    order = make_order(patient=patient, station=station, procedure_type=ProcedureTypeFactory(modality="CT"))
    proc = order.procedures.get()
    sched.procedure_start(procedure=proc)
    sched.procedure_complete(procedure=proc)
    report = rep.report_claim(procedure=proc, actor=users["radiologist"])

    pages = {
        "order": (page_for("front_desk", language=language), f"/orders/{order.pk}/"),
        "console": (page_for("technologist", language=language), f"/console/exam/{proc.pk}/"),
        "report": (page_for("radiologist", language=language), f"/reports/{report.pk}/edit/"),
    }
    seen = {}
    for name, (page, path) in pages.items():
        seen[name] = _banner(page, page.base_url + path)
    first = seen["order"]
    for name, value in seen.items():
        assert value == first, (name, value, first)
    texts = " ".join(first[0]) + " ".join(first[1].values())
    assert ("Temporary registration" if language == "en" else "临时登记") in texts
    assert "bad" in first[1]["alert-pregnancy"]
    # the name shows both groups, formatted, never the raw DICOM PN
    name = pages["console"][0].locator('[data-testid="patient-banner"] .pname').inner_text()
    assert "王小东" in name and "WANG XiaoDong" in name and "^" not in name
