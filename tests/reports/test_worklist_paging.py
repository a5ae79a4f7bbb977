"""The reading worklist is paged and says how many exams there are (it used to stop at 200)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from reports import selectors
from reports.selectors import WorklistFilters


def test_selector_pages_with_the_total(make_exam, users):
    for _ in range(7):
        make_exam()
    page, counts = selectors.reading_worklist_page(
        user=users["radiologist"], filters=WorklistFilters(), page=2, per_page=3
    )
    assert page.paginator.count == counts["all"] == 7
    assert page.number == 2 and len(page.object_list) == 3
    last, _ = selectors.reading_worklist_page(
        user=users["radiologist"], filters=WorklistFilters(), page="99", per_page=3
    )
    assert last.number == 3 and len(last.object_list) == 1  # out of range: the last page


def test_more_than_200_rows_are_reachable(client_for, make_exam, settings):
    """Before, row 201 onwards could not be seen at all; now every exam is on some page."""
    settings.RIS_READING_WORKLIST_PAGE_SIZE = 100
    from reports.models import ReportStatus  # noqa: F401  (the factory needs the app loaded)

    procs = [make_exam() for _ in range(205)]
    client = client_for("radiologist")
    seen = set()
    for n in (1, 2, 3):
        resp = client.get(reverse("reports:reading_worklist"), {"page": n})
        seen |= {p.order.accession_number for p in resp.context["rows"]}
        assert resp.context["page"].paginator.count == 205
    assert seen == {p.order.accession_number for p in procs}
    assert "201–205 of 205" in resp.content.decode()
    event = AuditEvent.objects.filter(action="report.worklist").order_by("-pk").first()
    assert event.detail["page"] == 3 and event.detail["total"] == 205 and event.detail["rows"] == 5


@pytest.mark.browser
def test_worklist_pages_in_the_browser(page_for, make_exam, settings):
    settings.RIS_READING_WORKLIST_PAGE_SIZE = 5
    settings.RIS_READING_WORKLIST_REFRESH_SECONDS = 3600  # nothing in flight at teardown
    exams = [make_exam() for _ in range(12)]
    page = page_for("radiologist", language="zh-hans")
    page.goto(f"{page.base_url}/reading/?modality=CT")
    assert page.locator('[data-testid="qf-all"] .count').inner_text() == "12"
    seen = []
    for expected in ("1–5", "6–10", "11–12"):
        assert expected in page.locator('[data-testid="wl-range"]').inner_text()
        assert "12" in page.locator('[data-testid="wl-range"]').inner_text()
        seen += page.locator('[data-testid="wl-row"]').evaluate_all("rs => rs.map(r => r.dataset.accession)")
        if expected != "11–12":
            page.click('[data-testid="wl-next"]')
            page.wait_for_url(lambda url: "page=" in url and "modality=CT" in url)
    assert sorted(seen) == sorted(e.order.accession_number for e in exams)
    assert page.locator('[data-testid="wl-next"]').count() == 0
    page.click('[data-testid="wl-prev"]')
    page.wait_for_url(lambda url: url.endswith("page=2"))


@pytest.mark.browser
def test_printing_the_reading_worklist_prints_only_the_list(page_for, make_exam, settings):
    settings.RIS_READING_WORKLIST_REFRESH_SECONDS = 3600  # nothing in flight at teardown
    exam = make_exam()
    page = page_for("radiologist")
    page.goto(f"{page.base_url}/reading/")
    assert page.get_by_test_id("worklist-filters").is_visible()
    page.emulate_media(media="print")
    assert not page.get_by_test_id("worklist-filters").is_visible()
    assert not page.get_by_test_id("open-next").is_visible()
    assert not page.locator(".topbar").is_visible()
    assert not page.locator('[data-testid="claim"]').first.is_visible()
    assert page.get_by_test_id("reading-worklist").is_visible()
    assert exam.order.accession_number in page.get_by_test_id("reading-worklist").inner_text()
