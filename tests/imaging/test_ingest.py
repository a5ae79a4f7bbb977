"""Indexing and linking (services, Celery eager): the study lands on the right order or in the queue."""

from __future__ import annotations

import os
import time

import pytest

from audit.models import AuditEvent
from imaging import services
from imaging.models import (
    Instance,
    LinkMethod,
    ReceivedObject,
    ReconciliationItem,
    Series,
    Study,
    StudyLink,
)
from scheduling.models import ProcedureEvent, ProcedureStatus
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.django_db


def _study_for(proc, patient, n=3, **kw):
    series = kw.pop("series_uid", None)
    from pydicom.uid import generate_uid

    series = series or generate_uid()
    return [
        ct_dataset(
            study_uid=kw.get("study_uid", proc.study_instance_uid),
            series_uid=series,
            accession=kw.get("accession", proc.order.accession_number),
            patient_id=kw.get("patient_id", patient.patient_id),
            instance_number=i + 1,
            z=i * 2.5,
        )
        for i in range(n)
    ]


def test_matching_study_is_indexed_linked_and_completes_the_procedure(receive, ordered_procedure):
    proc, patient = ordered_procedure
    datasets = _study_for(proc, patient, n=4)
    receive(*datasets)
    result = services.study_ingest(study_instance_uid=proc.study_instance_uid)
    assert result == {"indexed": 4, "linked": True}
    study = Study.objects.get()
    assert (study.requested_procedure_id, study.patient_id) == (proc.pk, patient.pk)
    assert (study.num_series, study.num_instances, study.modalities) == (1, 4, "CT")
    assert study.accession_number == proc.order.accession_number
    assert study.patient_name == "Test^Patient"
    assert set(ReceivedObject.objects.values_list("state", flat=True)) == {"indexed"}
    inst = Instance.objects.order_by("instance_number").first()
    assert inst.rescale_intercept == -1024.0 and inst.window_width == 400.0
    assert inst.image_position == [-100.0, -100.0, 0.0] and inst.pixel_spacing == [0.7, 0.7]
    link = StudyLink.objects.get()
    assert (link.method, link.linked_by) == (LinkMethod.ACCESSION, None)
    proc.refresh_from_db()
    assert proc.images_available_at is not None
    assert proc.status == ProcedureStatus.COMPLETED
    events = list(ProcedureEvent.objects.filter(requested_procedure=proc).values_list("action", "source"))
    assert ("images_available", "ingest") in events
    assert ("start", "ingest") in events and ("complete", "ingest") in events
    assert AuditEvent.objects.filter(action="study.link", object_id=str(study.pk)).count() == 1


def test_reingest_and_resend_create_no_duplicates(receive, ordered_procedure):
    proc, patient = ordered_procedure
    datasets = _study_for(proc, patient, n=3)
    receive(*datasets)
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    receive(*datasets)  # the modality sends everything again
    assert services.study_ingest(study_instance_uid=proc.study_instance_uid)["indexed"] == 0
    assert (Study.objects.count(), Series.objects.count(), Instance.objects.count()) == (1, 1, 3)
    assert ReceivedObject.objects.count() == 3
    assert StudyLink.objects.count() == 1
    assert ProcedureEvent.objects.filter(requested_procedure=proc, action="images_available").count() == 1


def test_in_progress_procedure_is_not_completed_by_ingest(receive, ordered_procedure):
    from scheduling.services import procedure_start

    proc, patient = ordered_procedure
    procedure_start(procedure=proc, source="mpps:CT01")
    receive(*_study_for(proc, patient, n=1))
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS
    assert proc.images_available_at is not None


def test_patient_mismatch_goes_to_reconciliation_never_linked(receive, ordered_procedure):
    proc, patient = ordered_procedure
    PatientFactory(patient_id="OTHER1", issuer="RIS")
    receive(*_study_for(proc, patient, n=2, patient_id="OTHER1"))
    assert services.study_ingest(study_instance_uid=proc.study_instance_uid)["linked"] is False
    study = Study.objects.get()
    assert study.requested_procedure_id is None
    assert study.patient.patient_id == "OTHER1"  # the registered owner of the ID, not the order's
    item = ReconciliationItem.objects.get()
    assert item.reason == "patient_mismatch" and item.resolved_at is None
    proc.refresh_from_db()
    assert proc.images_available_at is None and proc.status == ProcedureStatus.SCHEDULED


def test_study_uid_mismatch_goes_to_reconciliation(receive, ordered_procedure):
    proc, patient = ordered_procedure
    from pydicom.uid import generate_uid

    uid = generate_uid()
    receive(*_study_for(proc, patient, n=1, study_uid=uid))
    services.study_ingest(study_instance_uid=uid)
    assert ReconciliationItem.objects.get().reason == "study_uid_mismatch"
    assert not StudyLink.objects.exists()


def test_unknown_accession_then_late_order_is_matched_on_creation(
    receive, django_capture_on_commit_callbacks
):
    from pydicom.uid import generate_uid

    patient = PatientFactory(patient_id="LATE1", issuer="RIS")
    uid = generate_uid()
    receive(*[ct_dataset(study_uid=uid, accession="LATE0001", patient_id="LATE1") for _ in range(2)])
    services.study_ingest(study_instance_uid=uid)
    assert ReconciliationItem.objects.get().reason == "unknown_accession"
    with django_capture_on_commit_callbacks(execute=True):
        order = make_order(patient=patient, accession_number="LATE0001", study_instance_uid=uid)
    study = Study.objects.get()
    proc = order.procedures.get()
    assert study.requested_procedure_id == proc.pk
    assert StudyLink.objects.get().method == LinkMethod.ORDER_CREATED
    assert ReconciliationItem.objects.get().resolved_at is not None
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED


def test_inconsistent_objects_in_one_study_block_auto_link(receive, ordered_procedure):
    proc, patient = ordered_procedure
    datasets = _study_for(proc, patient, n=2)
    datasets[1].PatientID = "SOMEONEELSE"
    receive(*datasets)
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    assert ReconciliationItem.objects.get().reason == "inconsistent"
    assert not StudyLink.objects.exists()


@pytest.mark.parametrize(
    ("charset", "encoded_name", "ideographic"),
    [
        ("ISO_IR 192", "Wang^XiaoDong=王^小东", "王^小东"),
        ("GB18030", "Wang^XiaoDong=王^小东", "王^小东"),
        ("GBK", "Wang^XiaoDong=王^小东", "王^小东"),
        (["", "ISO 2022 IR 58"], "Zhang^XiaoDong=张^小东", "张^小东"),
    ],
)
def test_specific_character_sets_are_decoded(receive, charset, encoded_name, ideographic):
    ds = ct_dataset(charset=charset, patient_name=encoded_name)
    ds.StudyDescription = "胸部CT平扫"
    receive(ds)
    raw = ReceivedObject.objects.get()
    from imaging.storage import path_for

    data = path_for(raw.relpath).read_bytes()
    assert "王".encode() not in data or charset == "ISO_IR 192"  # really encoded in that set
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    study = Study.objects.get()
    assert study.patient_name.split("=")[1] == ideographic
    assert study.description == "胸部CT平扫"


def test_sweeper_reenqueues_only_expired_leases(
    receive, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr("imaging.services._send_ingest", sent.append)
    expired, leased, fresh = ct_dataset(), ct_dataset(), ct_dataset()
    receive(expired, leased, fresh)
    old = timezone.now() - timedelta(seconds=settings.RIS_INGEST_LEASE_SECONDS + 5)
    ReceivedObject.objects.filter(sop_instance_uid=expired.SOPInstanceUID).update(received_at=old)
    ReceivedObject.objects.filter(sop_instance_uid=leased.SOPInstanceUID).update(
        received_at=old, enqueued_at=timezone.now()
    )
    # A receive a crash interrupted left its temporary file; one in progress is kept.
    tmp = settings.RIS_STORAGE_ROOT / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    stale, current = tmp / "rx-stale.part", tmp / "rx-current.part"
    stale.write_bytes(b"partial")
    current.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep_received() == {"studies": 1, "orders": 0, "tmp_removed": 1}
    assert not stale.exists() and current.exists()
    assert sent == [expired.StudyInstanceUID]
    assert ReceivedObject.objects.get(sop_instance_uid=expired.SOPInstanceUID).enqueued_at is not None


def test_objects_past_max_attempts_end_dead(receive, settings):
    ds = ct_dataset()
    receive(ds)
    ReceivedObject.objects.update(attempts=settings.RIS_INGEST_MAX_ATTEMPTS)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    obj = ReceivedObject.objects.get()
    assert obj.state == "dead" and "attempts" in obj.last_error
    assert not Instance.objects.exists()


def test_missing_file_is_a_permanent_failure(receive):
    ds = ct_dataset()
    receive(ds)
    from imaging.storage import path_for

    path_for(ReceivedObject.objects.get().relpath).unlink()
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    assert ReceivedObject.objects.get().state == "dead"


def test_wrong_patient_and_wrong_study_uid_reports_the_patient(receive, ordered_procedure):
    proc, patient = ordered_procedure
    from pydicom.uid import generate_uid

    uid = generate_uid()
    receive(*_study_for(proc, patient, n=1, study_uid=uid, patient_id="SOMEBODY"))
    services.study_ingest(study_instance_uid=uid)
    assert ReconciliationItem.objects.get().reason == "patient_mismatch"


def test_cancelled_procedure_is_not_linked(receive, ordered_procedure):
    from scheduling.services import procedure_cancel

    proc, patient = ordered_procedure
    procedure_cancel(procedure=proc, reason="patient left")
    receive(*_study_for(proc, patient, n=1))
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    assert ReconciliationItem.objects.get().reason == "procedure_closed"
    assert not StudyLink.objects.exists()


def test_merged_patient_id_still_links(receive):
    """IHE PIR: the modality used the temporary ID from the worklist; the order moved on merge."""
    from registration.services import patient_merge

    real = PatientFactory(patient_id="REAL-9", issuer="RIS")
    temp = PatientFactory(patient_id="TEMP-9", issuer="RIS", is_temporary=True)
    proc = make_order(patient=temp).procedures.select_related("order").get()
    patient_merge(source=temp, target=real, actor=None)
    receive(*_study_for(proc, temp, n=1))
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    study = Study.objects.get()
    assert study.requested_procedure_id == proc.pk and study.patient_id == real.pk


@pytest.mark.parametrize("sent_name", ["王^小东", "WANG^XIAODONG", "Wang^XiaoDong=王^小东"])
def test_candidates_found_by_chinese_or_pinyin_name(receive, sent_name):
    from imaging.selectors import reconciliation_candidates
    from tests.factories import next_slot

    patient = PatientFactory(
        patient_id="NAME-1",
        family_name="Wang",
        given_name="XiaoDong",
        ideographic_family="王",
        ideographic_given="小东",
    )
    start = next_slot()
    proc = make_order(patient=patient, start=start).procedures.get()
    other = make_order(start=next_slot(120)).procedures.get()  # someone else, same day
    ds = ct_dataset(
        accession="",
        patient_id="UNKNOWN-7",
        patient_name=sent_name,
        study_date=start.strftime("%Y%m%d"),
    )
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    study = Study.objects.get()
    assert ReconciliationItem.objects.get().reason == "no_accession"
    candidates = reconciliation_candidates(study=study)
    assert [c.procedure.pk for c in candidates] == [proc.pk]
    assert candidates[0].rank == 4 and "name" in candidates[0].matches
    assert "patient_id" in candidates[0].mismatches
    assert other.pk not in [c.procedure.pk for c in candidates]


def test_candidate_ranking_prefers_accession_over_patient_date_modality(receive):
    from imaging.selectors import reconciliation_candidates
    from tests.factories import next_slot

    patient = PatientFactory(patient_id="RANK-1")
    start = next_slot()
    by_patient = make_order(patient=patient, start=start).procedures.select_related("order").get()
    by_accession = make_order(start=next_slot(60)).procedures.select_related("order").get()
    ds = ct_dataset(
        accession=by_accession.order.accession_number,
        patient_id="RANK-1",
        study_date=start.strftime("%Y%m%d"),
    )
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    ranked = reconciliation_candidates(study=Study.objects.get())
    assert [(c.procedure.pk, c.rank) for c in ranked][:2] == [(by_accession.pk, 1), (by_patient.pk, 3)]


def test_accession_from_another_issuer_is_not_ours(receive, ordered_procedure, settings):
    from pydicom.dataset import Dataset

    settings.RIS_ISSUER_OF_ACCESSION_NUMBER = "RIS"
    proc, patient = ordered_procedure
    ds = _study_for(proc, patient, n=1)[0]
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "OTHERHOSP"
    ds.IssuerOfAccessionNumberSequence = [issuer]
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    assert ReconciliationItem.objects.get().reason == "issuer_mismatch"
    assert not StudyLink.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_of_one_object_store_it_once(tmp_path):
    import threading

    from django.db import connection

    from tests.imaging.dicom_data import write_part10

    ds = ct_dataset()
    paths = [write_part10(tmp_path / f"c{i}.dcm", ds) for i in range(4)]
    results, barrier = [], threading.Barrier(4)

    def send(path):
        barrier.wait()
        try:
            results.append(services.object_receive(path=path, calling_ae="CT01").outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate", "duplicate", "duplicate", "stored"]
    obj = ReceivedObject.objects.get()
    from imaging import storage

    assert storage.sha256_of(obj.relpath) == obj.sha256
    assert len([p for p in (storage.storage_root() / "objects").rglob("*.dcm")]) == 1


def test_same_patient_id_from_another_issuer_is_a_mismatch(receive, ordered_procedure):
    proc, patient = ordered_procedure
    ds = _study_for(proc, patient, n=1)[0]
    ds.IssuerOfPatientID = "OTHER-HOSPITAL"
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    assert ReconciliationItem.objects.get().reason == "patient_mismatch"


def test_sweeper_enqueues_one_task_per_study_not_per_row(
    receive, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A 150-instance study past its lease is one ingest task, not 150 (issue 9 item 10)."""
    from datetime import timedelta

    from django.utils import timezone
    from pydicom.uid import generate_uid

    sent = []
    monkeypatch.setattr("imaging.services._send_ingest", sent.append)
    study_uid, series_uid = generate_uid(), generate_uid()
    big = [ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1) for i in range(150)]
    other = ct_dataset()
    receive(*big, other)
    old = timezone.now() - timedelta(seconds=settings.RIS_INGEST_LEASE_SECONDS + 5)
    ReceivedObject.objects.update(received_at=old, enqueued_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_received()
    assert result["studies"] == 2
    assert sorted(sent) == sorted([study_uid, other.StudyInstanceUID])
