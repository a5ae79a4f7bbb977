"""The audit viewer: a readable detail column, filters kept across pages, a CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record
from audit.views import PAGE_SIZE, detail_items
from ris.roles import Role
from tests.factories import PatientFactory, UserFactory


def test_detail_items_are_readable_pairs():
    assert detail_items({"query": {"q": "王"}, "rows": 3, "reason": "wrong password"}) == [
        ("query", '{"q": "王"}'),
        ("rows", "3"),
        ("reason", "wrong password"),
    ]
    assert detail_items({}) == [] and detail_items(None) == []


@pytest.mark.django_db
def test_csv_export_has_bom_filters_and_is_audited(client_for):
    alice = UserFactory(username="alice")
    p1 = PatientFactory(patient_id="MRN001")
    audit_record(action="patient.view", actor=alice, object_type="patient", patient_id=p1.pk)
    audit_record(
        action="report.sign", actor=alice, object_type="report", detail={"note": "=HYPERLINK(1)", "名": "王"}
    )
    audit_record(action="login", actor=alice, outcome="failure")
    c = client_for(Role.DEPT_HEAD)
    resp = c.get(reverse("audit:event_export"), {"user": "alice", "action": "report."})
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    assert "attachment" in resp["Content-Disposition"]
    raw = b"".join(resp.streaming_content).decode("utf-8")
    assert raw.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(raw[1:])))
    assert table[0][0] == "Time" and len(table) == 2
    row = dict(zip(table[0], table[1], strict=True))
    assert row["Action"] == "report.sign" and row["User"] == "alice"
    assert row["Detail"].startswith("{") and "王" in row["Detail"]
    export = AuditEvent.objects.filter(action="audit.export").get()
    assert export.detail["rows"] == 1 and export.detail["query"] == {"user": "alice", "action": "report."}
    # a leading "=" in a logged value cannot become a spreadsheet formula
    audit_record(action="x.y", actor=alice, object_type="=cmd")
    raw = b"".join(c.get(reverse("audit:event_export"), {"action": "x."}).streaming_content).decode()
    assert "'=cmd" in raw
    # Chinese headers and outcomes in Chinese
    c.cookies["django_language"] = "zh-hans"
    raw = b"".join(c.get(reverse("audit:event_export"), {"outcome": "failure"}).streaming_content).decode()
    assert "时间" in raw and "失败" in raw
    assert client_for(Role.RADIOLOGIST).get(reverse("audit:event_export")).status_code == 403


@pytest.mark.browser
def test_grid_is_readable_filters_persist_and_export(page_for, users):
    bob = UserFactory(username="bob")
    for i in range(PAGE_SIZE + 5):
        audit_record(
            action="report.view",
            actor=bob,
            object_type="report",
            object_id=i,
            detail={"filters": {"modality": "CT", "quick": "unread"}, "rows": i, "reason": "reading list"},
        )
    audit_record(action="patient.view", actor=users["front_desk"], object_type="patient")
    page = page_for("dept_head", language="zh-hans")
    page.goto(f"{page.base_url}/audit/")
    page.fill('input[name="user"]', "bob")
    page.fill('input[name="action"]', "report.")
    page.locator('[data-testid="audit-search"] button[type="submit"]').click()
    page.wait_for_url(lambda u: "user=bob" in u)
    cell = page.locator('[data-testid="audit-detail"]').first
    box = cell.bounding_box()
    assert box["width"] > 200, box  # not one character per line
    line = page.evaluate(
        "el => parseFloat(getComputedStyle(el.querySelector('dd')).lineHeight) || 16", cell.element_handle()
    )
    assert box["height"] < line * 8, box
    assert "reading list" in cell.inner_text()
    page.click('[data-testid="audit-older"]')
    page.wait_for_url(lambda u: "page=2" in u)
    assert page.input_value('input[name="user"]') == "bob"
    assert page.input_value('input[name="action"]') == "report."
    assert page.locator('[data-testid="audit-results"] tbody tr').count() == 5
    with page.expect_download() as info:
        page.click('[data-testid="audit-export"]')
    with open(info.value.path(), encoding="utf-8") as fh:
        data = fh.read()
    assert data.startswith("\ufeff")
    assert data.count("report.view") == PAGE_SIZE + 5 and "patient.view" not in data
    assert AuditEvent.objects.filter(
        action="audit.export", actor_username=users["dept_head"].username
    ).exists()
