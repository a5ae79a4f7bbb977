"""Technologist console pages: lists, patient banner, manual steps, notes, polling, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from scheduling.models import ProcedureEvent, ProcedureStatus
from tests.factories import PatientFactory, StationFactory, make_order
from worklist import services
from worklist.models import ExamNote

from .mpps_data import for_procedure, n_create

pytestmark = pytest.mark.django_db


def today_slot(minutes: int = 0):
    now = timezone.localtime().replace(second=0, microsecond=0)
    base = now.replace(minute=(now.minute // 15) * 15)
    # Stay inside today whatever the hour the test runs.
    if base.hour >= 21:
        base = base.replace(hour=0, minute=0)
    return base + timedelta(minutes=minutes)


@pytest.fixture
def exam():
    patient = PatientFactory(
        allergies="Iodinated contrast", medical_alerts="Pacemaker", pregnancy_status=2, sex="F"
    )
    return make_order(
        patient=patient, station=StationFactory(ae_title="CT1"), start=today_slot()
    ).procedures.get()


def test_console_requires_console_use(client_for, exam):
    assert client_for("front_desk").get(reverse("worklist:console")).status_code == 403
    assert client_for("technologist").get(reverse("worklist:console")).status_code == 200
    assert client_for("admin").get(reverse("worklist:console")).status_code == 200


def test_console_lists_today_per_station_and_audits_once(client_for, exam):
    other = make_order(
        station=StationFactory(ae_title="MR1", modality="MR"), start=today_slot()
    ).procedures.get()
    tomorrow = make_order(station=StationFactory(ae_title="CT1"), start=today_slot() + timedelta(days=1))
    c = client_for("technologist")
    before = AuditEvent.objects.count()
    body = c.get(reverse("worklist:console"), {"station": "CT1"}).content.decode()
    assert exam.order.accession_number in body
    assert other.order.accession_number not in body
    assert tomorrow.accession_number not in body
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert event.action == "console.view" and exam.order.patient_id in event.detail["patients"]
    body = c.get(reverse("worklist:console"), {"modality": "MR"}).content.decode()
    assert other.order.accession_number in body and exam.order.accession_number not in body


def test_console_columns_follow_status(client_for, exam):
    c = client_for("technologist")
    services.console_start(procedure=exam, actor=None)
    response = c.get(reverse("worklist:console"), {"station": "CT1"})
    columns = dict((key, steps) for key, _label, steps in response.context["columns"])
    assert [s.requested_procedure_id for s in columns["in_progress"]] == [exam.pk]
    assert columns["scheduled"] == []


def test_board_poll_is_204_while_unchanged_and_renders_after_mpps(client_for, exam):
    c = client_for("technologist")
    version = c.get(reverse("worklist:console"), {"station": "CT1"}).context["version"]
    url = reverse("worklist:console_board")
    before = AuditEvent.objects.count()
    assert c.get(url, {"station": "CT1", "v": version}).status_code == 204
    assert AuditEvent.objects.count() == before  # nothing shown, nothing audited
    services.mpps_create(attributes=n_create(for_procedure(exam)), calling_ae="CT1")
    response = c.get(url, {"station": "CT1", "v": version})
    assert response.status_code == 200
    assert 'data-status="in_progress"' in response.content.decode()
    assert AuditEvent.objects.filter(action="console.refresh").count() == 1


def test_board_query_count_is_constant(client_for, exam):
    c = client_for("technologist")
    url = reverse("worklist:console_board")
    c.get(url)
    with CaptureQueriesContext(connection) as one:
        c.get(url)
    for i in range(1, 6):
        make_order(
            station=StationFactory(ae_title="CT1"),
            start=today_slot(15 * i)
            if today_slot(15 * i).date() == timezone.localdate()
            else today_slot(-15 * i),
        )
    with CaptureQueriesContext(connection) as many:
        c.get(url)
    assert len(many) == len(one)


def test_exam_page_shows_banner_alerts_and_audits(client_for, exam):
    c = client_for("technologist")
    body = c.get(reverse("worklist:exam", args=[exam.pk])).content.decode()
    assert "Iodinated contrast" in body and "Pacemaker" in body and 'data-testid="alert-pregnancy"' in body
    assert (
        AuditEvent.objects.filter(
            action="console.exam_view", object_id=str(exam.pk), patient_ref=exam.order.patient_id
        ).count()
        == 1
    )


def test_manual_start_complete_go_through_services(client_for, exam, users):
    c = client_for("technologist")
    assert c.post(reverse("worklist:exam_action", args=[exam.pk, "start"])).status_code == 302
    assert c.post(reverse("worklist:exam_action", args=[exam.pk, "complete"])).status_code == 302
    exam.refresh_from_db()
    assert exam.status == ProcedureStatus.COMPLETED
    sources = list(
        ProcedureEvent.objects.filter(requested_procedure=exam).values_list("action", "source", "actor")
    )
    tech = users["technologist"].pk
    assert sources[1:] == [("start", "console", tech), ("complete", "console", tech)]


def test_manual_discontinue_needs_reason(client_for, exam):
    c = client_for("technologist")
    c.post(reverse("worklist:exam_action", args=[exam.pk, "start"]))
    c.post(reverse("worklist:exam_action", args=[exam.pk, "discontinue"]), {"reason": ""})
    exam.refresh_from_db()
    assert exam.status == ProcedureStatus.IN_PROGRESS
    c.post(
        reverse("worklist:exam_action", args=[exam.pk, "discontinue"]), {"reason": "Patient claustrophobic"}
    )
    exam.refresh_from_db()
    assert exam.status == ProcedureStatus.DISCONTINUED and exam.status_reason == "Patient claustrophobic"


def test_invalid_transition_is_a_message_not_an_error(client_for, exam):
    c = client_for("technologist")
    response = c.post(reverse("worklist:exam_action", args=[exam.pk, "complete"]), follow=True)
    assert response.status_code == 200
    exam.refresh_from_db()
    assert exam.status == ProcedureStatus.SCHEDULED
    assert "Cannot complete" in response.content.decode()


def test_front_desk_cannot_post_actions(client_for, exam):
    assert (
        client_for("front_desk").post(reverse("worklist:exam_action", args=[exam.pk, "start"])).status_code
        == 403
    )
    exam.refresh_from_db()
    assert exam.status == ProcedureStatus.SCHEDULED


def test_note_records_contrast_and_films(client_for, exam):
    c = client_for("technologist")
    response = c.post(
        reverse("worklist:exam_note", args=[exam.pk]), {"films_printed": "2", "text": "Good study"}
    )
    assert response.status_code == 302
    note = ExamNote.objects.get(procedure=exam)
    assert (note.films_printed, note.text) == (2, "Good study")
    assert AuditEvent.objects.filter(action="exam.note", object_id=str(exam.pk)).count() == 1


def test_empty_note_is_refused(client_for, exam):
    c = client_for("technologist")
    response = c.post(reverse("worklist:exam_note", args=[exam.pk]), {"text": " "})
    assert response.status_code == 400
    assert not ExamNote.objects.exists()


def test_note_with_ledger_items_takes_stock(client_for, exam):
    department = pytest.importorskip("department.models")
    contrast = department.MaterialItem.objects.create(
        code="IOHEXOL350", name="Iohexol 350", kind="contrast", unit="ml", stock_level=1000
    )
    c = client_for("technologist")
    response = c.post(
        reverse("worklist:exam_note", args=[exam.pk]),
        {"contrast_item": "IOHEXOL350", "contrast_dose_ml": "80", "text": ""},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    contrast.refresh_from_db()
    assert contrast.stock_level == 920
    assert ExamNote.objects.get(procedure=exam).contrast_agent == "Iohexol 350"


def test_exam_shows_mpps_detail(client_for, exam):
    mpps = services.mpps_create(attributes=n_create(for_procedure(exam)), calling_ae="CT1")
    body = client_for("technologist").get(reverse("worklist:exam", args=[exam.pk])).content.decode()
    assert mpps.sop_instance_uid in body and 'data-testid="mpps-status"' in body


def test_unscheduled_mpps_linked_from_exceptions_page(client_for, exam):
    from worklist.models import MPPSException, PerformedProcedureStep

    from .mpps_data import n_set_final, ssa_item

    mpps = services.mpps_create(attributes=n_create(ssa_item()), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(), calling_ae="CT1"
    )
    c = client_for("technologist")
    body = c.get(reverse("worklist:console")).content.decode()
    assert 'data-testid="open-exceptions"' in body
    page = c.get(reverse("worklist:mpps_exceptions")).content.decode()
    assert "Test Patient" in page and "X1" in page
    exc = MPPSException.objects.get(mpps=mpps)
    c.post(
        reverse("worklist:mpps_exceptions"),
        {"exception": exc.pk, "action": "link", "accession_number": exam.order.accession_number},
    )
    exam.refresh_from_db()
    exc.refresh_from_db()
    assert exc.resolved_at is not None and exam.status == ProcedureStatus.COMPLETED
    assert list(PerformedProcedureStep.objects.get(pk=mpps.pk).procedures.all()) == [exam]
    assert (
        AuditEvent.objects.filter(action="mpps.exception_resolve", object_id=mpps.sop_instance_uid).count()
        == 1
    )


def test_exception_link_to_unknown_accession_changes_nothing(client_for):
    from worklist.models import MPPSException

    from .mpps_data import ssa_item

    mpps = services.mpps_create(attributes=n_create(ssa_item()), calling_ae="CT1")
    exc = MPPSException.objects.get(mpps=mpps)
    client_for("technologist").post(
        reverse("worklist:mpps_exceptions"),
        {"exception": exc.pk, "action": "link", "accession_number": "NOPE"},
    )
    exc.refresh_from_db()
    assert exc.resolved_at is None


def test_console_in_chinese(client_for, exam, settings):
    c = client_for("technologist")
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    body = c.get(reverse("worklist:console")).content.decode()
    assert "技师工作台" in body and "未匹配的 MPPS" in body


def test_image_count_check_compares_mpps_with_received(client_for, exam):
    imaging = pytest.importorskip("imaging.models")
    from .mpps_data import n_set_final

    mpps = services.mpps_create(attributes=n_create(for_procedure(exam)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(series=(3,)), calling_ae="CT1"
    )
    series_uid = _series_uid(mpps)
    c = client_for("technologist")
    url = reverse("worklist:exam", args=[exam.pk])
    body = c.get(url).content.decode()
    assert "0 received / 3 reported" in body and "not received" in body

    study = imaging.Study.objects.create(study_instance_uid=exam.study_instance_uid, requested_procedure=exam)
    series = imaging.Series.objects.create(study=study, series_instance_uid=series_uid, num_instances=2)
    version = c.get(url).context["version"]
    assert "2 received / 3 reported" in c.get(url).content.decode()
    imaging.Series.objects.filter(pk=series.pk).update(num_instances=3)
    # The polled status block changes when the last image arrives.
    response = c.get(reverse("worklist:exam_status", args=[exam.pk]), {"v": version})
    assert response.status_code == 200
    assert response.context["image_check"].complete
    assert "3 received / 3 reported" in response.content.decode()


def _series_uid(mpps):
    mpps.refresh_from_db()
    return mpps.performed_series[0]["series_uid"]


def test_import_link_only_for_administrators(client_for, exam):
    url = reverse("worklist:import")
    assert url not in client_for("technologist").get(reverse("worklist:console")).content.decode()
    assert url in client_for("admin").get(reverse("worklist:console")).content.decode()


def test_contrast_warning_when_allergic_patient_gets_contrast(client_for):
    from tests.factories import ProcedureTypeFactory

    station = StationFactory(ae_title="CT1")
    enhanced = ProcedureTypeFactory(code_value="CTC", code_meaning="CT Chest with contrast")
    allergic = PatientFactory(allergies="Iodinated contrast")
    with_contrast = make_order(patient=allergic, station=station, procedure_type=enhanced, start=today_slot())
    plain = make_order(patient=allergic, station=station, start=today_slot(30))
    not_allergic = make_order(station=station, procedure_type=enhanced, start=today_slot(60))
    c = client_for("technologist")

    def warned(order):
        url = reverse("worklist:exam", args=[order.procedures.get().pk])
        return 'data-testid="contrast-warning"' in c.get(url).content.decode()

    assert (warned(with_contrast), warned(plain), warned(not_allergic)) == (True, False, False)


def test_arrived_column_puts_stat_first(client_for):
    station = StationFactory(ae_title="CT1")
    routine = make_order(station=station, start=today_slot()).procedures.get()
    stat = make_order(station=station, start=today_slot(30), priority="STAT").procedures.get()
    services.console_arrive(procedure=routine, actor=None)
    services.console_arrive(procedure=stat, actor=None)
    response = client_for("technologist").get(reverse("worklist:console"), {"station": "CT1"})
    columns = {key: steps for key, _label, steps in response.context["columns"]}
    assert [s.requested_procedure_id for s in columns["arrived"]] == [stat.pk, routine.pk]
    assert "waiting" in response.content.decode()


def test_exam_page_query_count_does_not_grow(client_for, exam):
    from .mpps_data import n_set_final

    c = client_for("technologist")
    url = reverse("worklist:exam", args=[exam.pk])
    services.mpps_create(attributes=n_create(for_procedure(exam)), calling_ae="CT1")
    services.exam_note_add(procedure=exam, actor=None, text="first")
    c.get(url)
    with CaptureQueriesContext(connection) as few:
        c.get(url)
    for i in range(4):
        m = services.mpps_create(attributes=n_create(for_procedure(exam)), calling_ae="CT1")
        services.mpps_update(
            sop_instance_uid=m.sop_instance_uid, modifications=n_set_final(series=(i + 1,)), calling_ae="CT1"
        )
        services.exam_note_add(procedure=exam, actor=None, text=f"note {i}")
    with CaptureQueriesContext(connection) as many:
        c.get(url)
    assert len(many) == len(few)


def _another_exam(i: int):
    start = today_slot(15 * i) if today_slot(15 * i).date() == timezone.localdate() else today_slot(-15 * i)
    return make_order(station=StationFactory(ae_title="CT1"), start=start).procedures.get()


def _flag_series(procedure, *flags):
    """A linked study whose one series carries image QC flags (as imaging.qc stores them)."""
    imaging = pytest.importorskip("imaging.models")
    from pydicom.uid import generate_uid

    study = imaging.Study.objects.create(
        study_instance_uid=procedure.study_instance_uid, requested_procedure=procedure
    )
    return imaging.Series.objects.create(
        study=study,
        series_instance_uid=generate_uid(),
        num_instances=10,
        qc={"received": 10, "expected": 12, "flags": list(flags)},
        qc_flagged=bool(flags),
    )


def test_board_and_exam_show_image_qc_flags(client_for, exam):
    clean = _another_exam(1)
    _flag_series(exam, "missing_instances", "slice_gap")
    _flag_series(clean)  # a series without flags shows nothing
    c = client_for("technologist")
    response = c.get(reverse("worklist:console_board"))
    body = response.content.decode()
    assert body.count('data-testid="console-qc"') == 1
    assert 'data-flags="missing_instances,slice_gap"' in body
    assert "fewer images than the modality reported" in body and "slice gap" in body
    steps = {s.requested_procedure_id: s for _k, _l, col in response.context["columns"] for s in col}
    assert [code for code, _label in steps[exam.pk].qc_flags] == ["missing_instances", "slice_gap"]
    assert steps[clean.pk].qc_flags == []

    exam_body = c.get(reverse("worklist:exam", args=[exam.pk])).content.decode()
    assert 'data-testid="exam-qc"' in exam_body
    assert 'data-flag="missing_instances"' in exam_body and 'data-flag="slice_gap"' in exam_body
    assert 'data-testid="exam-qc"' not in c.get(reverse("worklist:exam", args=[clean.pk])).content.decode()


def test_image_qc_flags_in_chinese(client_for, exam, settings):
    _flag_series(exam, "slice_gap")
    c = client_for("technologist")
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    body = c.get(reverse("worklist:console_board")).content.decode()
    assert 'data-flags="slice_gap"' in body and "层面缺失" in body


def test_board_query_count_is_constant_with_qc_flags(client_for, exam):
    _flag_series(exam, "slice_gap")
    c = client_for("technologist")
    url = reverse("worklist:console_board")
    c.get(url)
    with CaptureQueriesContext(connection) as one:
        c.get(url)
    for i in range(1, 6):
        proc = _another_exam(i)
        _flag_series(proc, "missing_instances" if i % 2 else "irregular_spacing")
    with CaptureQueriesContext(connection) as many:
        body = c.get(url).content.decode()
    assert body.count('data-testid="console-qc"') == 6
    assert len(many) == len(one)
