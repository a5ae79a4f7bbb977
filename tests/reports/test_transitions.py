"""The report lifecycle: every transition, every forbidden one, signatures and concurrency."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from audit.models import AuditEvent
from reports import services
from reports.models import Addendum, Report, ReportEvent, ReportStatus, ReportVersion, Signature, VersionKind
from ris.errors import ApplicationError, Conflict, InvalidTransition

from .conftest import PASSWORD

STATES = ["draft", "preliminary", "final", "amended"]


def _events(report):
    return list(ReportEvent.objects.filter(report=report).values_list("action", flat=True))


@pytest.mark.django_db
def test_happy_path_records_each_step(make_report, users):
    report = make_report("amended")
    assert report.status == "amended"
    assert _events(report) == ["created", "saved", "submitted", "signed", "addendum"]
    kinds = list(report.versions.values_list("kind", flat=True))
    assert kinds == ["draft", "preliminary", "final"]
    assert report.signed_by == users["reviewer"]
    assert report.author == users["radiologist"]
    assert report.submitted_at <= report.signed_at <= report.amended_at
    for action in ["report.create", "report.edit", "report.submit", "report.sign", "report.addendum"]:
        assert (
            AuditEvent.objects.filter(action=action, object_id=str(report.pk), outcome="success").count() == 1
        )


# Every (state, action): allowed ones move the state, forbidden ones raise and change nothing.
ACTIONS = {
    "save": (
        lambda r, u: services.report_save_draft(
            report=r, actor=u["radiologist"], findings="x", impression="y"
        ),
        {"draft": "draft"},
    ),
    "submit": (
        lambda r, u: services.report_submit(report=r, actor=u["radiologist"]),
        {"draft": "preliminary"},
    ),
    "review_edit": (
        lambda r, u: services.report_review_edit(
            report=r, actor=u["reviewer"], findings="f2", impression="i2"
        ),
        {"preliminary": "preliminary"},
    ),
    "return": (
        lambda r, u: services.report_return(report=r, actor=u["reviewer"], comment="check size"),
        {"preliminary": "draft"},
    ),
    "sign": (
        lambda r, u: services.report_sign(report=r, actor=u["reviewer"], password=PASSWORD),
        {"preliminary": "final"},
    ),
    "addendum": (
        lambda r, u: services.report_add_addendum(
            report=r, actor=u["reviewer"], text="more", password=PASSWORD
        ),
        {"final": "amended", "amended": "amended"},
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("state", STATES)
def test_transition_table(make_report, users, action, state):
    report = make_report(state)
    fn, allowed = ACTIONS[action]
    before_events = ReportEvent.objects.filter(report=report).count()
    before_versions = list(report.versions.values_list("pk", "findings", "impression"))
    if state in allowed:
        fn(report, users)
        report.refresh_from_db()
        assert report.status == allowed[state]
        assert ReportEvent.objects.filter(report=report).count() == before_events + 1
    else:
        with pytest.raises((InvalidTransition, Conflict)):
            fn(report, users)
        report.refresh_from_db()
        assert report.status == state
        assert ReportEvent.objects.filter(report=report).count() == before_events
        assert list(report.versions.values_list("pk", "findings", "impression")) == before_versions


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["radiologist", "technologist", "front_desk", "dept_head"])
def test_only_signers_sign(make_report, users, role):
    report = make_report("preliminary")
    with pytest.raises(PermissionDenied):
        services.report_sign(report=report, actor=users[role], password=PASSWORD)
    report.refresh_from_db()
    assert report.status == "preliminary"
    assert not Signature.objects.filter(report=report).exists()
    assert AuditEvent.objects.filter(
        action="report.sign", object_id=str(report.pk), outcome="denied"
    ).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("password", [None, "", "wrong-password"])
def test_sign_needs_the_right_password(make_report, users, password):
    report = make_report("preliminary")
    with pytest.raises(ApplicationError) as err:
        services.report_sign(report=report, actor=users["reviewer"], password=password)
    assert "password" in err.value.fields
    report.refresh_from_db()
    assert report.status == "preliminary"
    assert not Signature.objects.filter(report=report).exists()
    failure = AuditEvent.objects.get(action="report.sign", object_id=str(report.pk))
    assert failure.outcome == "failure"
    assert failure.actor_username == users["reviewer"].username


@pytest.mark.django_db
def test_addendum_needs_password_and_signer(make_report, users):
    report = make_report("final")
    with pytest.raises(ApplicationError):
        services.report_add_addendum(report=report, actor=users["reviewer"], text="x", password="nope")
    with pytest.raises(PermissionDenied):
        services.report_add_addendum(report=report, actor=users["radiologist"], text="x", password=PASSWORD)
    assert not Addendum.objects.filter(report=report).exists()


@pytest.mark.django_db
def test_addendum_on_draft_is_refused(make_report, users):
    report = make_report("draft")
    with pytest.raises(InvalidTransition):
        services.report_add_addendum(report=report, actor=users["reviewer"], text="x", password=PASSWORD)


@pytest.mark.django_db
def test_signature_hash_verifies_against_stored_content(make_report, users):
    report = make_report(
        "amended", findings="右肺上叶见一肺结节，直径约8mm。", impression="肺结节，建议随访。"
    )
    sigs = list(Signature.objects.filter(report=report).select_related("version__report", "addendum__report"))
    assert len(sigs) == 2
    assert all(services.signature_verify(s) for s in sigs)
    final = ReportVersion.objects.get(report=report, kind=VersionKind.FINAL)
    assert final.findings == "右肺上叶见一肺结节，直径约8mm。"
    assert sigs[0].printed_name and sigs[0].meaning == "approved"
    # Tampering (in memory) breaks verification: the hash covers the text.
    final.findings += " tampered"
    sigs[0].version = final
    assert not services.signature_verify(sigs[0])


@pytest.mark.django_db
def test_edit_after_final_is_refused_everywhere(make_report, users):
    report = make_report("final")
    with pytest.raises(InvalidTransition):
        services.report_save_draft(
            report=report, actor=users["radiologist"], findings="new", impression="new"
        )
    with pytest.raises(InvalidTransition):
        services.report_review_edit(report=report, actor=users["reviewer"], findings="new", impression="new")
    version = ReportVersion.objects.get(report=report, kind=VersionKind.FINAL)
    version.findings = "changed"
    with pytest.raises(PermissionError):
        version.save()
    with pytest.raises(PermissionError):
        version.delete()
    report.refresh_from_db()
    assert report.findings == "Lungs clear."


@pytest.mark.django_db
def test_claim_lock_blocks_a_second_writer_until_broken(make_exam, users):
    from tests.factories import UserFactory

    other = UserFactory(role="radiologist")
    exam = make_exam()
    report = services.report_claim(procedure=exam, actor=users["radiologist"])
    assert report.locked_by == users["radiologist"]
    with pytest.raises(Conflict):
        services.report_claim(procedure=exam, actor=other)
    with pytest.raises(Conflict):
        services.report_save_draft(report=report, actor=other, findings="x", impression="y")
    with pytest.raises(PermissionDenied):
        services.report_break_lock(report=report, actor=other)
    services.report_break_lock(report=report, actor=users["dept_head"])
    assert services.report_claim(procedure=exam, actor=other).locked_by == other
    overrides = AuditEvent.objects.filter(action="report.override_lock", object_id=str(report.pk))
    assert sorted(overrides.values_list("outcome", flat=True)) == ["denied", "success"]


@pytest.mark.django_db
def test_stale_revision_is_a_conflict(make_report, users):
    report = make_report("draft")
    stale = report.revision
    services.report_save_draft(
        report=report, actor=users["radiologist"], findings="a", impression="b", expected_revision=stale
    )
    with pytest.raises(Conflict):
        services.report_save_draft(
            report=report, actor=users["radiologist"], findings="c", impression="d", expected_revision=stale
        )


@pytest.mark.django_db
def test_autosave_without_change_makes_no_version(make_report, users):
    report = make_report("draft")
    n = report.versions.count()
    services.report_save_draft(
        report=report,
        actor=users["radiologist"],
        findings=report.findings,
        impression=report.impression,
        autosave=True,
    )
    assert report.versions.count() == n


@pytest.mark.django_db
def test_return_then_resubmit_keeps_comment_and_versions(make_report, users):
    report = make_report("preliminary")
    with pytest.raises(ApplicationError):
        services.report_return(report=report, actor=users["reviewer"], comment="  ")
    services.report_return(report=report, actor=users["reviewer"], comment="Measure the nodule.")
    report.refresh_from_db()
    assert report.status == "draft" and report.return_comment == "Measure the nodule."
    services.report_submit(
        report=report, actor=users["radiologist"], findings="Nodule 8 mm.", impression="Nodule."
    )
    report.refresh_from_db()
    assert report.status == "preliminary"
    assert report.versions.filter(kind="preliminary").count() == 2


@pytest.mark.django_db
def test_reviewer_edit_is_signed_and_diff_kept(make_report, users):
    from reports.selectors import submitted_version, text_diff

    report = make_report("preliminary", impression="No acute disease.")
    services.report_review_edit(
        report=report,
        actor=users["reviewer"],
        findings="Lungs clear.",
        impression="No acute cardiopulmonary disease.",
    )
    sig = services.report_sign(report=report, actor=users["reviewer"], password=PASSWORD)
    assert sig.version.impression == "No acute cardiopulmonary disease."
    diff = text_diff(submitted_version(report).impression, sig.version.impression)
    assert ("+", "cardiopulmonary ") in diff


@pytest.mark.django_db
def test_submit_needs_text(make_report, users):
    report = make_report("draft", findings="", impression="")
    with pytest.raises(ApplicationError):
        services.report_submit(report=report, actor=users["radiologist"])


@pytest.mark.django_db
def test_claim_refused_before_images(users):
    from tests.factories import make_order

    proc = make_order().procedures.get()
    with pytest.raises(InvalidTransition):
        services.report_claim(procedure=proc, actor=users["radiologist"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_reviewers_sign_at_once_exactly_one_wins(make_report, users):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    from tests.factories import UserFactory

    second = UserFactory(role="reviewer")
    report = make_report("preliminary")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def worker(user):
        from django.db import connections

        try:
            barrier.wait()
            services.report_sign(report=report.pk, actor=user, password=PASSWORD)
            results.append("ok")
        except (InvalidTransition, Conflict):
            results.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(u,)) for u in (users["reviewer"], second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "ok"]
    assert Signature.objects.filter(report=report).count() == 1
    assert ReportVersion.objects.filter(report=report, kind="final").count() == 1
    assert ReportEvent.objects.filter(report=report, action="signed").count() == 1
    assert Report.objects.get(pk=report.pk).status == "final"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_addenda_at_once_are_both_kept_in_order(make_report, users):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    from tests.factories import UserFactory

    second = UserFactory(role="reviewer")
    report = make_report("final")
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def worker(user, text):
        from django.db import connections

        try:
            barrier.wait()
            services.report_add_addendum(report=report.pk, actor=user, text=text, password=PASSWORD)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(users["reviewer"], "first")),
        threading.Thread(target=worker, args=(second, "second")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    addenda = list(Addendum.objects.filter(report=report).order_by("number"))
    assert [a.number for a in addenda] == [1, 2]
    assert {a.text for a in addenda} == {"first", "second"}
    report.refresh_from_db()
    assert "first" in report.search_text and "second" in report.search_text
    assert all(
        services.signature_verify(s) for s in Signature.objects.filter(report=report, addendum__isnull=False)
    )


@pytest.mark.django_db
def test_the_most_specific_template_is_preloaded(make_exam):
    from reports.models import ReportTemplate

    exam = make_exam(modality="CT", body_part="CHEST")
    generic = ReportTemplate.objects.create(name="CT any", modality="CT", findings="generic")
    assert services.template_for(exam) == generic
    chest = ReportTemplate.objects.create(name="CT chest", modality="CT", body_part="CHEST", findings="chest")
    assert services.template_for(exam) == chest
    ReportTemplate.objects.create(name="MR chest", modality="MR", body_part="CHEST", findings="mr")
    exact = ReportTemplate.objects.create(name="exact", procedure_type=exam.procedure_type, findings="exact")
    assert services.template_for(exam) == exact
    exact.active = False
    exact.save()
    assert services.template_for(exam) == chest


@pytest.mark.django_db
def test_transition_signal_is_sent_after_commit_only(make_report, users, django_capture_on_commit_callbacks):
    from reports.signals import report_transitioned

    seen = []

    def receiver(**kwargs):
        seen.append((kwargs["action"], kwargs["to_status"]))

    report_transitioned.connect(receiver)
    try:
        report = make_report("preliminary")
        seen.clear()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.report_sign(report=report, actor=users["reviewer"], password=PASSWORD)
        assert seen == []
        for cb in callbacks:
            cb()
        assert seen == [("signed", "final")]
    finally:
        report_transitioned.disconnect(receiver)


@pytest.mark.django_db
def test_claim_refused_on_a_cancelled_exam_even_with_images(users):
    from django.utils import timezone

    from scheduling import services as sched
    from scheduling.models import RequestedProcedure
    from tests.factories import make_order

    proc = make_order().procedures.get()
    sched.procedure_cancel(procedure=proc, reason="duplicate order")
    RequestedProcedure.objects.filter(pk=proc.pk).update(images_available_at=timezone.now())
    with pytest.raises(InvalidTransition):
        services.report_claim(procedure=proc, actor=users["radiologist"])
    assert not Report.objects.filter(requested_procedure=proc).exists()


@pytest.mark.django_db
def test_an_expired_claim_can_be_taken_and_saving_renews_it(make_exam, users):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import UserFactory

    exam = make_exam()
    report = services.report_claim(procedure=exam, actor=users["radiologist"])
    first_until = report.locked_until
    assert first_until > timezone.now() + timedelta(minutes=services.lock_minutes() - 1)
    Report.objects.filter(pk=report.pk).update(locked_until=timezone.now() + timedelta(seconds=5))
    report = services.report_save_draft(
        report=report, actor=users["radiologist"], findings="a", impression="b"
    )
    assert report.locked_until > timezone.now() + timedelta(minutes=services.lock_minutes() - 1)
    Report.objects.filter(pk=report.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    other = UserFactory(role="radiologist")
    taken = services.report_claim(procedure=exam, actor=other)
    assert taken.locked_by == other
    with pytest.raises(Conflict):
        services.report_save_draft(report=report, actor=users["radiologist"], findings="late", impression="x")
    assert Report.objects.get(pk=report.pk).findings == "a"


def test_the_report_lifecycle_is_one_declared_table():
    """Every report status change is declared in REPORT_TRANSITIONS (ris.lifecycle)."""
    lifecycle = services.REPORT_LIFECYCLE
    assert lifecycle.statuses() == set(ReportStatus.values)
    assert lifecycle.allowed_actions(ReportStatus.DRAFT) == ["submit"]
    assert lifecycle.allowed_actions(ReportStatus.PRELIMINARY) == ["return", "sign"]
    assert lifecycle.allowed_actions(ReportStatus.FINAL) == ["addendum"]
    assert lifecycle.allowed_actions(ReportStatus.AMENDED) == ["addendum"]
