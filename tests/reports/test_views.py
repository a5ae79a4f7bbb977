"""Pages: worklist, editor, review, signing, PDF, search, critical results, peer review; roles and audit."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from reports import services
from reports.models import Report, ReportRelease, ReportTemplate

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _audits(action, report=None):
    qs = AuditEvent.objects.filter(action=action)
    if report is not None:
        qs = qs.filter(object_id=str(report.pk))
    return qs


def test_worklist_orders_stat_first_and_counts(client_for, make_exam, make_report, users):
    routine = make_exam(priority="ROUTINE")
    stat = make_exam(priority="STAT")
    draft = make_report("draft")
    signed = make_report("final")
    c = client_for("radiologist")
    with CaptureQueriesContext(connection) as ctx:
        resp = c.get(reverse("reports:reading_worklist"))
    assert resp.status_code == 200
    html = resp.content.decode()
    stat_acc, routine_acc = stat.order.accession_number, routine.order.accession_number
    assert html.index(stat_acc) < html.index(routine_acc)
    assert draft.requested_procedure.order.accession_number in html
    assert signed.requested_procedure.order.accession_number not in html
    assert resp.context["counts"]["stat"] == 1
    assert resp.context["counts"]["my_drafts"] == 1
    assert resp.context["counts"]["all"] == 3
    assert len(ctx.captured_queries) < 25
    # More rows do not add queries (no N+1).
    for _ in range(4):
        make_exam()
    with CaptureQueriesContext(connection) as ctx2:
        c.get(reverse("reports:reading_worklist"))
    assert len(ctx2.captured_queries) == len(ctx.captured_queries)
    # htmx refresh returns only the rows.
    partial = c.get(reverse("reports:reading_worklist") + "?quick=stat", headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and stat_acc in body and routine_acc not in body


def test_worklist_filters(client_for, make_exam):
    ct = make_exam(modality="CT", body_part="CHEST")
    mr = make_exam(modality="MR", body_part="HEAD")
    c = client_for("radiologist")
    resp = c.get(reverse("reports:reading_worklist"), {"modality": "MR"})
    html = resp.content.decode()
    assert mr.order.accession_number in html and ct.order.accession_number not in html
    assert resp.context["counts"]["modalities"] == [("CT", 1), ("MR", 1)]
    html = c.get(reverse("reports:reading_worklist"), {"body_part": "chest"}).content.decode()
    assert ct.order.accession_number in html and mr.order.accession_number not in html
    ct_station = ct.steps.get().station.ae_title
    html = c.get(reverse("reports:reading_worklist"), {"station": ct_station.lower()}).content.decode()
    assert ct.order.accession_number in html and mr.order.accession_number not in html
    html = c.get(reverse("reports:reading_worklist"), {"referring": "nobody"}).content.decode()
    assert ct.order.accession_number not in html and mr.order.accession_number not in html


@pytest.mark.parametrize(
    "role,status", [("technologist", 403), ("front_desk", 403), ("radiologist", 200), ("dept_head", 403)]
)
def test_worklist_roles(client_for, role, status):
    assert client_for(role).get(reverse("reports:reading_worklist")).status_code == status


def test_claim_edit_autosave_submit_sign_pdf_flow(client_for, make_exam, users):
    exam = make_exam()
    ReportTemplate.objects.create(
        name="CT chest", modality="CT", findings="双肺纹理清晰。", impression="未见异常。"
    )
    rad = client_for("radiologist")
    resp = rad.post(reverse("reports:claim", args=[exam.pk]))
    report = Report.objects.get(requested_procedure=exam)
    assert resp.status_code == 302 and resp.url == reverse("reports:edit", args=[report.pk])
    assert report.findings == "双肺纹理清晰。"  # from the template
    page = rad.get(resp.url)
    assert page.status_code == 200 and "双肺纹理清晰" in page.content.decode()
    assert _audits("report.view", report).count() == 1
    auto = rad.post(
        reverse("reports:autosave", args=[report.pk]),
        {
            "findings": "右肺上叶见一肺结节，直径约8mm。",
            "impression": "肺结节。",
            "revision": page.context["form"]["revision"].value(),
        },
    )
    assert auto.status_code == 200 and "Saved" in auto.content.decode()
    report.refresh_from_db()
    assert report.findings.startswith("右肺上叶")
    assert _audits("report.edit", report).count() == 1
    resp = rad.post(
        reverse("reports:edit", args=[report.pk]),
        {
            "findings": report.findings,
            "impression": "右肺上叶肺结节。",
            "revision": report.revision,
            "submit": "1",
        },
    )
    assert resp.status_code == 302
    report.refresh_from_db()
    assert report.status == "preliminary"

    # A radiologist cannot sign through the page (403), the reviewer needs the password.
    assert (
        rad.post(
            reverse("reports:review", args=[report.pk]), {"action": "sign", "password": PASSWORD}
        ).status_code
        == 403
    )
    rev = client_for("reviewer")
    assert (
        report.requested_procedure.order.accession_number
        in rev.get(reverse("reports:review_queue")).content.decode()
    )
    bad = rev.post(reverse("reports:review", args=[report.pk]), {"action": "sign", "password": "wrong"})
    assert bad.status_code == 200
    report.refresh_from_db()
    assert report.status == "preliminary"
    assert _audits("report.sign", report).get().outcome == "failure"
    ok = rev.post(
        reverse("reports:review", args=[report.pk]),
        {"action": "sign", "password": PASSWORD, "revision": report.revision},
    )
    assert ok.status_code == 302
    report.refresh_from_db()
    assert report.status == "final" and report.verification_code

    detail = rev.get(reverse("reports:detail", args=[report.pk])).content.decode()
    assert "verified" in detail and report.verification_code in detail
    assert rad.get(reverse("reports:reading_worklist")).context["counts"]["modalities"] == []

    pdf = rev.get(reverse("reports:pdf", args=[report.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert ReportRelease.objects.filter(report=report, kind="download").count() == 1
    assert _audits("report.release", report).count() == 1
    text = _pdf_text(pdf.content)
    assert "右肺上叶见一肺结节" in text
    assert report.verification_code in text
    assert f"http://testserver/reports/verify/{report.verification_code}/" in text

    # Release to a person is logged with the recipient.
    rev.post(
        reverse("reports:release", args=[report.pk]),
        {"kind": "release", "recipient": "患者本人", "copies": 2},
    )
    assert ReportRelease.objects.get(report=report, kind="release").recipient == "患者本人"

    # Addendum through the page, then shown with the original.
    rev.post(
        reverse("reports:addendum", args=[report.pk]), {"text": "补充：左肾小囊肿。", "password": PASSWORD}
    )
    report.refresh_from_db()
    assert report.status == "amended"
    html = rev.get(reverse("reports:detail", args=[report.pk])).content.decode()
    assert "补充：左肾小囊肿。" in html and "右肺上叶见一肺结节" in html
    assert "左肾小囊肿" in _pdf_text(rev.get(reverse("reports:pdf", args=[report.pk])).content)

    # Public verification page shows no patient data.
    v = client_for("technologist").get(reverse("reports:verify", args=[report.verification_code]))
    assert v.status_code == 200
    assert report.requested_procedure.order.patient.family_name not in v.content.decode()
    assert client_for("technologist").get(reverse("reports:verify", args=["NOPE"])).status_code == 404


def _pdf_text(data: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is not installed")
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=data, capture_output=True, check=True
    )
    return out.stdout.decode("utf-8")


def test_chinese_pdf_contains_the_chinese_text(make_report):
    from reports.pdf import render_report_pdf

    report = make_report(
        "final", findings="肝脏形态大小正常，肝内未见异常密度影。", impression="腹部CT平扫未见明显异常。"
    )
    text = _pdf_text(render_report_pdf(report))
    assert "肝脏形态大小正常" in text
    assert "腹部CT平扫未见明显异常" in text
    assert "影像诊断报告" in text


def test_pdf_of_draft_is_not_available(client_for, make_report):
    report = make_report("preliminary")
    assert client_for("reviewer").get(reverse("reports:pdf", args=[report.pk])).status_code == 404


def test_return_shows_comment_to_author(client_for, make_report):
    report = make_report("preliminary")
    rev = client_for("reviewer")
    rev.post(reverse("reports:review", args=[report.pk]), {"action": "return", "comment": "请补充测量值"})
    report.refresh_from_db()
    assert report.status == "draft"
    html = client_for("radiologist").get(reverse("reports:edit", args=[report.pk])).content.decode()
    assert "请补充测量值" in html


def test_reviewer_edit_shows_diff(client_for, make_report):
    report = make_report("preliminary", impression="No acute disease.")
    rev = client_for("reviewer")
    rev.post(
        reverse("reports:review", args=[report.pk]),
        {
            "action": "edit",
            "findings": report.findings,
            "impression": "No acute cardiopulmonary disease.",
            "revision": report.revision,
        },
    )
    html = rev.get(reverse("reports:review", args=[report.pk])).content.decode()
    assert "<ins>cardiopulmonary </ins>" in html


def test_search_page_audits_and_hides_drafts(client_for, make_report):
    signed = make_report("final", findings="右肺上叶见一肺结节。", impression="肺结节。")
    draft = make_report("draft", findings="左肺肺结节。", impression="肺结节草稿。")
    resp = client_for("radiologist").get(reverse("reports:search"), {"q": "肺结节"})
    html = resp.content.decode()
    assert signed.requested_procedure.order.accession_number in html
    assert draft.requested_procedure.order.accession_number not in html
    event = _audits("report.search").get()
    assert event.detail["results"] == 1


def test_critical_result_flow_and_overdue(client_for, make_report, users):
    from datetime import timedelta

    from django.utils import timezone

    from reports.models import CriticalResult

    report = make_report("preliminary")
    rad = client_for("radiologist")
    rad.post(reverse("reports:critical_flag", args=[report.pk]), {"category": "1", "finding": "张力性气胸"})
    critical = CriticalResult.objects.get(report=report)
    assert 55 <= (critical.due_at - critical.created_at).total_seconds() / 60 <= 65
    CriticalResult.objects.filter(pk=critical.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    html = rad.get(reverse("reports:critical_list"), {"overdue": "1"}).content.decode()
    assert "张力性气胸" in html
    rad.post(reverse("reports:critical_acknowledge", args=[critical.pk]), {"acknowledged_by": "Dr Wu"})
    critical.refresh_from_db()
    assert critical.acknowledged_at is None  # acknowledgement needs a notification first
    rad.post(
        reverse("reports:critical_notify", args=[critical.pk]), {"recipient": "Dr Wu (ED)", "method": "phone"}
    )
    rad.post(
        reverse("reports:critical_acknowledge", args=[critical.pk]),
        {"acknowledged_by": "Dr Wu", "read_back": "on"},
    )
    critical.refresh_from_db()
    assert critical.notified_at and critical.acknowledged_at and critical.read_back
    assert "张力性气胸" not in rad.get(reverse("reports:critical_list"), {"overdue": "1"}).content.decode()
    assert _audits("critical.notify", report).count() == 1


def test_peer_review_sampling_scoring_and_results(client_for, make_report, users):
    import random

    from tests.factories import UserFactory

    peer = UserFactory(role="radiologist")
    reports = [make_report("final") for _ in range(4)]
    created = services.peer_review_sample(share=1.0, rng=random.Random(1))
    assert len(created) == 4
    for review in created:
        assert review.reviewer_id not in (users["radiologist"].pk, users["reviewer"].pk)
        assert review.reviewer_id == peer.pk and review.radiologist == users["reviewer"]
    assert {r.report_id for r in created} == {r.pk for r in reports}
    # Each signed report is considered once: sampling again takes only newly signed reports.
    newer = make_report("final")
    again = services.peer_review_sample(share=1.0, rng=random.Random(2))
    assert [r.report_id for r in again] == [newer.pk]
    created = created[:2]

    c = client_for("radiologist")
    c.force_login(peer)
    page = c.get(reverse("reports:peer_review_score", args=[created[0].pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert users["reviewer"].username not in html and users["radiologist"].username not in html  # blinded
    c.post(
        reverse("reports:peer_review_score", args=[created[0].pk]),
        {"score": "2b", "comment": "Missed nodule"},
    )
    c.post(reverse("reports:peer_review_score", args=[created[1].pk]), {"score": "1"})
    # Someone else cannot score it.
    assert (
        client_for("radiologist").get(reverse("reports:peer_review_score", args=[created[0].pk])).status_code
        == 403
    )
    results = client_for("dept_head").get(reverse("reports:peer_review_results"))
    row = results.context["rows"][0]
    assert row["total"] == 2 and row["discrepancy_rate"] == 50.0 and row["significant"] == 1
    assert client_for("radiologist").get(reverse("reports:peer_review_results")).status_code == 403


def test_peer_review_task_runs(make_report, settings):
    from reports.tasks import peer_review_sample

    settings.RIS_PEER_REVIEW_SHARE = 1.0
    from tests.factories import UserFactory

    UserFactory(role="radiologist")
    make_report("final")
    assert peer_review_sample.delay is not None
    assert peer_review_sample() == 1


def test_lock_owner_visible_and_second_radiologist_refused(client_for, make_exam, users):
    from tests.factories import UserFactory

    exam = make_exam()
    client_for("radiologist").post(reverse("reports:claim", args=[exam.pk]))
    other = UserFactory(role="radiologist")
    c = client_for("radiologist")
    c.force_login(other)
    html = c.get(reverse("reports:reading_worklist")).content.decode()
    assert "🔒" in html
    resp = c.post(reverse("reports:claim", args=[exam.pk]), follow=True)
    assert "being written by" in resp.content.decode()
    report = Report.objects.get(requested_procedure=exam)
    assert report.locked_by == users["radiologist"]
    head = client_for("dept_head")
    board = head.get(reverse("reports:claims")).content.decode()
    assert 'data-testid="break-lock"' in board and exam.order.accession_number in board
    assert client_for("radiologist").get(reverse("reports:claims")).status_code == 403
    resp = head.post(reverse("reports:break_lock", args=[report.pk]), {"next": reverse("reports:claims")})
    assert resp.url == reverse("reports:claims")
    report.refresh_from_db()
    assert report.locked_by is None


def test_editor_shows_imaging_series_and_survives_a_broken_preview(client_for, make_exam, monkeypatch):
    from imaging.models import Series, Study

    exam = make_exam()
    study = Study.objects.create(
        study_instance_uid=exam.study_instance_uid, requested_procedure=exam, num_instances=120, num_series=1
    )
    series = Series.objects.create(
        study=study,
        series_instance_uid=exam.study_instance_uid + ".1",
        series_number=2,
        modality="CT",
        description="Lung 1.25mm",
        num_instances=120,
    )
    from django.utils import timezone

    from imaging.models import Instance, ReceivedObject

    uid = exam.study_instance_uid + ".1.1"
    received = ReceivedObject.objects.create(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        study_instance_uid=exam.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        relpath=f"x/{uid}.dcm",
        sha256="0" * 64,
        size=1,
        received_at=timezone.now(),
    )
    inst = Instance.objects.create(
        series=series,
        received_object=received,
        sop_instance_uid=uid,
        sop_class_uid=received.sop_class_uid,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    Series.objects.filter(pk=series.pk).update(thumbnail_instance=inst)
    rad = client_for("radiologist")
    rad.post(reverse("reports:claim", args=[exam.pk]))
    report = Report.objects.get(requested_procedure=exam)
    html = rad.get(reverse("reports:edit", args=[report.pk])).content.decode()
    assert "Lung 1.25mm" in html and "120" in html
    assert reverse("imaging:study_detail", kwargs={"pk": study.pk}) in html
    assert f'src="{reverse("imaging:thumbnail", kwargs={"pk": inst.pk})}"' in html

    import imaging.selectors

    def broken(**kwargs):
        raise RuntimeError("imaging down")

    monkeypatch.setattr(imaging.selectors, "study_preview_for_procedure", broken, raising=False)
    resp = rad.get(reverse("reports:edit", args=[report.pk]))
    assert resp.status_code == 200 and "Lung 1.25mm" not in resp.content.decode()
    assert "thumbnail.jpg" not in resp.content.decode()


def test_viewer_link_uses_the_study_instance_uid(client_for, make_exam, settings):
    settings.RIS_VIEWER_URL_TEMPLATE = "http://viewer.example/ohif?StudyInstanceUIDs={study_instance_uid}"
    exam = make_exam()
    rad = client_for("radiologist")
    resp = rad.post(reverse("reports:claim", args=[exam.pk]), follow=True)
    assert f"http://viewer.example/ohif?StudyInstanceUIDs={exam.study_instance_uid}" in resp.content.decode()


def test_pages_render_in_chinese(client_for, make_report):
    from django.conf import settings as dj

    report = make_report("final")
    c = client_for("reviewer")
    c.cookies[dj.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "审核队列" in c.get(reverse("reports:review_queue")).content.decode()
    html = c.get(reverse("reports:detail", args=[report.pk])).content.decode()
    assert "补充报告" in html and "下载 PDF" in html


def test_search_start_page_lists_recently_signed_for_the_release_desk(client_for, make_report):
    signed = make_report("final")
    draft = make_report("draft")
    resp = client_for("front_desk").get(reverse("reports:search"))
    html = resp.content.decode()
    assert signed.requested_procedure.order.accession_number in html
    assert draft.requested_procedure.order.accession_number not in html
    assert _audits("report.search").get().detail["recent"] is True


def test_errors_are_translated(client_for, make_report):
    from django.conf import settings as dj

    report = make_report("preliminary")
    c = client_for("reviewer")
    c.cookies[dj.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = c.post(reverse("reports:review", args=[report.pk]), {"action": "sign", "password": "bad"}).content
    assert "密码不正确" in html.decode()


def _autosave(client_for, report):
    c = client_for("radiologist")
    return c.post(
        reverse("reports:autosave", args=[report.pk]),
        {"findings": "Edited.", "impression": "Edited.", "revision": report.revision},
    )


AUDITED = {
    # action: (report state, role, request)
    "report.view": (
        "final",
        "reviewer",
        lambda cf, r: cf("reviewer").get(reverse("reports:detail", args=[r.pk])),
    ),
    "report.edit": ("draft", "radiologist", _autosave),
    "report.sign": (
        "preliminary",
        "reviewer",
        lambda cf, r: cf("reviewer").post(
            reverse("reports:review", args=[r.pk]),
            {"action": "sign", "password": PASSWORD, "revision": r.revision},
        ),
    ),
    "report.release": (
        "final",
        "reviewer",
        lambda cf, r: cf("reviewer").get(reverse("reports:pdf", args=[r.pk])),
    ),
    "report.search": (
        "final",
        "radiologist",
        lambda cf, r: cf("radiologist").get(reverse("reports:search"), {"q": "lungs"}),
    ),
}


@pytest.mark.parametrize("action", list(AUDITED))
def test_one_audit_event_per_access(client_for, make_report, users, action):
    state, role, do = AUDITED[action]
    report = make_report(state)
    before = set(AuditEvent.objects.filter(action=action).values_list("pk", flat=True))
    resp = do(client_for, report)
    assert resp.status_code in (200, 302)
    new = AuditEvent.objects.filter(action=action).exclude(pk__in=before)
    assert new.count() == 1
    event = new.get()
    assert event.outcome == "success" and event.actor_username == users[role].username
    if action == "report.search":
        assert event.detail == {"query": "lungs", "results": 1}
    else:
        assert event.object_id == str(report.pk)
        assert event.patient_ref == report.requested_procedure.order.patient_id


def test_worklist_date_range(client_for, make_exam):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling.models import RequestedProcedure

    old = make_exam()
    RequestedProcedure.objects.filter(pk=old.pk).update(
        images_available_at=timezone.now() - timedelta(days=5)
    )
    new = make_exam()
    today = timezone.localdate()
    html = client_for("radiologist").get(
        reverse("reports:reading_worklist"), {"date_from": today.isoformat()}
    )
    body = html.content.decode()
    assert new.order.accession_number in body and old.order.accession_number not in body
    day = (today - timedelta(days=5)).isoformat()
    body = client_for("radiologist").get(
        reverse("reports:reading_worklist"), {"date_from": day, "date_to": day}
    )
    assert old.order.accession_number in body.content.decode()
    assert new.order.accession_number not in body.content.decode()


def test_open_next_claims_the_most_urgent_free_exam(client_for, make_exam, users):
    from tests.factories import UserFactory

    routine = make_exam(priority="ROUTINE")
    stat_taken = make_exam(priority="STAT")
    high = make_exam(priority="HIGH")
    other = UserFactory(role="radiologist")
    services.report_claim(procedure=stat_taken, actor=other)  # someone else is on the STAT one
    c = client_for("radiologist")
    resp = c.post(reverse("reports:claim_next"))
    report = Report.objects.get(requested_procedure=high)
    assert resp.status_code == 302 and resp.url == reverse("reports:edit", args=[report.pk])
    assert report.locked_by == users["radiologist"]
    # With the modality filter of the worklist carried along, and nothing left: back to the list.
    resp = c.post(reverse("reports:claim_next"), {"modality": "MR"})
    assert resp.url == reverse("reports:reading_worklist")
    assert not Report.objects.filter(requested_procedure=routine).exists()


def test_returned_to_me_filter(client_for, make_report, users):
    report = make_report("preliminary")
    services.report_return(report=report, actor=users["reviewer"], comment="Compare with prior.")
    c = client_for("radiologist")
    resp = c.get(reverse("reports:reading_worklist"), {"quick": "returned"})
    assert resp.context["counts"]["returned"] == 1 and resp.context["counts"]["my_drafts"] == 0
    assert [p.pk for p in resp.context["rows"]] == [report.requested_procedure_id]
    assert "Compare with prior." in resp.content.decode()


def test_review_queue_has_no_n_plus_one(client_for, make_report):
    make_report("preliminary")
    c = client_for("reviewer")
    with CaptureQueriesContext(connection) as one:
        c.get(reverse("reports:review_queue"))
    for _ in range(3):
        make_report("preliminary")
    with CaptureQueriesContext(connection) as four:
        resp = c.get(reverse("reports:review_queue"))
    assert len(resp.context["reports"]) == 4
    assert len(four.captured_queries) == len(one.captured_queries)


def test_person_names_are_shown_without_dicom_separators():
    from reports.templatetags.reports_tags import pn

    assert pn("Li^Ming") == "Li Ming"
    assert pn("Wang^XiaoDong=王^小东") == "Wang XiaoDong / 王 小东"
    assert pn("") == ""


def test_priors_are_the_patients_other_performed_exams(client_for, make_exam, make_report):
    from tests.factories import make_order

    first = make_report("final", findings="Old nodule 5 mm.", impression="Nodule 5 mm.")
    patient = first.requested_procedure.order.patient
    future = make_order(patient=patient).procedures.get()  # scheduled, not a prior
    current = make_exam(patient=patient)
    rad = client_for("radiologist")
    rad.post(reverse("reports:claim", args=[current.pk]))
    report = Report.objects.get(requested_procedure=current)
    resp = rad.get(reverse("reports:edit", args=[report.pk]))
    assert [p.pk for p in resp.context["priors"]] == [first.requested_procedure_id]
    assert future.pk not in [p.pk for p in resp.context["priors"]]
    assert "Nodule 5 mm." in resp.content.decode()
