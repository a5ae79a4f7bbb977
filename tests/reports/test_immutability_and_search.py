"""The database refuses changes to signed text (PostgreSQL); search finds signed reports only."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from reports import selectors
from reports.models import ReportVersion, Signature, VersionKind

pytestmark = pytest.mark.django_db


def _pg():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE reports_reportversion SET findings = 'forged' WHERE id = %(version)s",
        "DELETE FROM reports_reportversion WHERE id = %(version)s",
        "UPDATE reports_signature SET content_hash = 'x' WHERE report_id = %(report)s",
        "UPDATE reports_report SET findings = 'forged' WHERE id = %(report)s",
        "UPDATE reports_report SET status = 'draft' WHERE id = %(report)s",
        "DELETE FROM reports_report WHERE id = %(report)s",
    ],
)
def test_direct_sql_update_of_signed_text_fails(make_report, sql):
    _pg()
    report = make_report("final")
    version = ReportVersion.objects.get(report=report, kind=VersionKind.FINAL)
    with (
        pytest.raises(DatabaseError, match=r"immutable|cannot be deleted"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute(sql, {"version": version.pk, "report": report.pk})
    version.refresh_from_db()
    assert version.findings == "Lungs clear."
    report.refresh_from_db()
    assert report.status == "final" and report.findings == "Lungs clear."


@pytest.mark.postgres
def test_draft_versions_are_insert_only_too_but_draft_report_row_is_editable(make_report):
    _pg()
    report = make_report("draft")
    with connection.cursor() as cur:
        cur.execute("UPDATE reports_report SET findings = 'ok' WHERE id = %s", [report.pk])
    report.refresh_from_db()
    assert report.findings == "ok"
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("UPDATE reports_reportversion SET findings = 'x' WHERE report_id = %s", [report.pk])


@pytest.mark.postgres
def test_trigram_index_exists():
    _pg()
    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'reports_report_search_trgm'")
        row = cur.fetchone()
    assert row and "gin_trgm_ops" in row[0]


def test_search_finds_chinese_term_inside_a_sentence_and_not_drafts(make_report, make_exam, users):
    signed = make_report(
        "final", findings="右肺上叶尖段见一肺结节，大小约8mm，边界清楚。", impression="右肺上叶肺结节。"
    )
    draft = make_report("draft", findings="左肺下叶见肺结节。", impression="肺结节待审。")
    prelim = make_report("preliminary", findings="肺结节 in a preliminary.", impression="x")
    other = make_report("final", findings="Liver normal.", impression="Normal abdomen.")
    found = list(selectors.report_search(user=users["radiologist"], q="肺结节"))
    assert found == [signed]
    assert draft not in found and prelim not in found and other not in found
    # English, case-insensitive, several terms (AND).
    assert list(selectors.report_search(user=users["radiologist"], q="LIVER normal")) == [other]
    assert list(selectors.report_search(user=users["radiologist"], q="liver 肺结节")) == []


def test_search_includes_addenda_and_front_desk_sees_signed_only(make_report, users):
    from reports import services

    from .conftest import PASSWORD

    report = make_report("final", findings="Lungs clear.", impression="Normal.")
    services.report_add_addendum(
        report=report, actor=users["reviewer"], text="补充：甲状腺结节。", password=PASSWORD
    )
    assert list(selectors.report_search(user=users["front_desk"], q="甲状腺结节")) == [report]
    draft = make_report("draft")
    assert draft not in selectors.report_list_for(users["front_desk"])
    assert draft in selectors.report_list_for(users["radiologist"])
    assert not selectors.report_list_for(users["technologist"]).exists()


def test_signature_rows_refuse_python_updates(make_report):
    sig = Signature.objects.filter(report=make_report("final")).first()
    with pytest.raises(PermissionError):
        sig.save()
    assert AuditEvent.objects.filter(action="report.sign").exists()
