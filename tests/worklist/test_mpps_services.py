"""MPPS services (PS3.4 Annex F): linking, group case, unscheduled, final states, refusals."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from audit.models import AuditEvent
from scheduling import services as scheduling_services
from scheduling.models import ProcedureEvent, ProcedureStatus, RequestedProcedure
from tests.factories import StationFactory, make_order
from worklist import dicom_mpps, services
from worklist.models import MPPSException, MPPSStatus, PerformedProcedureStep

from .mpps_data import for_procedure, n_create, n_set_final, ssa_item

pytestmark = pytest.mark.django_db


def _proc(station=None):
    return make_order(station=station or StationFactory(ae_title="CT1")).procedures.get()


@pytest.mark.parametrize("by", ["uid", "ids"])
def test_create_links_and_starts_procedure(by):
    proc = _proc()
    uid = generate_uid()
    mpps = services.mpps_create(
        attributes=n_create(for_procedure(proc, by=by)), calling_ae="CT1", sop_instance_uid=uid
    )
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS
    assert list(mpps.procedures.all()) == [proc]
    assert mpps.status == MPPSStatus.IN_PROGRESS and not mpps.unscheduled
    assert mpps.patient_id == proc.order.patient_id
    event = ProcedureEvent.objects.filter(requested_procedure=proc).latest("id")
    assert (event.action, event.source, event.detail["mpps"]) == ("start", "mpps:CT1", uid)
    assert AuditEvent.objects.filter(action="mpps.create", object_id=uid, source_ae="CT1").count() == 1


def test_create_generates_uid_when_none_given():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    assert mpps.sop_instance_uid.startswith("2.25.") or mpps.sop_instance_uid


def test_group_case_starts_every_procedure():
    station = StationFactory(ae_title="CT1")
    a = _proc(station)
    b = make_order(station=station, start=a.steps.get().end).procedures.get()
    mpps = services.mpps_create(
        attributes=n_create(for_procedure(a), for_procedure(b, by="ids")), calling_ae="CT1"
    )
    assert set(mpps.procedures.values_list("pk", flat=True)) == {a.pk, b.pk}
    assert set(RequestedProcedure.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", flat=True)) == {
        ProcedureStatus.IN_PROGRESS
    }
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(), calling_ae="CT1"
    )
    assert set(RequestedProcedure.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", flat=True)) == {
        ProcedureStatus.COMPLETED
    }


def test_unscheduled_is_recorded_not_refused():
    mpps = services.mpps_create(attributes=n_create(ssa_item()), calling_ae="CT1")
    assert mpps.unscheduled and mpps.procedures.count() == 0
    exc = MPPSException.objects.get(mpps=mpps)
    assert exc.reason == "unscheduled" and exc.resolved_at is None


def test_partial_match_records_exception():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc), ssa_item()), calling_ae="CT1")
    assert list(mpps.procedures.all()) == [proc]
    assert MPPSException.objects.get(mpps=mpps).reason == "partial"


def test_complete_stores_series_and_completes():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(series=(3, 2)), calling_ae="CT1"
    )
    mpps.refresh_from_db()
    proc.refresh_from_db()
    assert mpps.status == MPPSStatus.COMPLETED and mpps.ended_at is not None
    assert mpps.image_count == 5 and [s["images"] for s in mpps.performed_series] == [3, 2]
    assert proc.status == ProcedureStatus.COMPLETED
    assert AuditEvent.objects.filter(action="mpps.set", object_id=mpps.sop_instance_uid).count() == 1


def test_discontinue_keeps_reason():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    reason = ("110514", "DCM", "Incorrect worklist entry selected")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid,
        modifications=n_set_final("DISCONTINUED", series=(), reason=reason),
        calling_ae="CT1",
    )
    mpps.refresh_from_db()
    proc.refresh_from_db()
    assert (mpps.discontinuation_code, mpps.discontinuation_meaning) == ("110514", reason[2])
    assert proc.status == ProcedureStatus.DISCONTINUED and proc.status_reason == reason[2]


def test_film_consumption_is_kept():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(films=2), calling_ae="CT1"
    )
    mpps.refresh_from_db()
    assert mpps.consumables == [{"kind": "film", "count": 2, "medium": "BLUE FILM", "size": "14INX17IN"}]


def test_intermediate_set_keeps_in_progress():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    mod = n_set_final("IN PROGRESS", series=(4,))
    del mod.PerformedProcedureStepEndDate
    del mod.PerformedProcedureStepEndTime
    services.mpps_update(sop_instance_uid=mpps.sop_instance_uid, modifications=mod, calling_ae="CT1")
    mpps.refresh_from_db()
    proc.refresh_from_db()
    assert mpps.status == MPPSStatus.IN_PROGRESS and mpps.image_count == 4
    assert proc.status == ProcedureStatus.IN_PROGRESS


def _code(fn):
    with pytest.raises(services.MPPSError) as info:
        fn()
    return dicom_mpps.mpps_status(info.value)[0]  # the adapter maps the domain error


def test_create_must_be_in_progress():
    ds = n_create(ssa_item())
    ds.PerformedProcedureStepStatus = "COMPLETED"
    assert _code(lambda: services.mpps_create(attributes=ds, calling_ae="CT1")) == 0x0106
    assert PerformedProcedureStep.objects.count() == 0


@pytest.mark.parametrize(
    "keyword", ["PerformedStationAETitle", "Modality", "PerformedProcedureStepStartDate"]
)
def test_missing_type1_is_0120(keyword):
    ds = n_create(ssa_item())
    delattr(ds, keyword)
    assert _code(lambda: services.mpps_create(attributes=ds, calling_ae="CT1")) == 0x0120


def test_empty_type1_is_0121():
    ds = n_create(ssa_item())
    ds.Modality = ""
    assert _code(lambda: services.mpps_create(attributes=ds, calling_ae="CT1")) == 0x0121


def test_duplicate_create_is_0111():
    uid = generate_uid()
    services.mpps_create(attributes=n_create(ssa_item()), calling_ae="CT1", sop_instance_uid=uid)
    assert (
        _code(
            lambda: services.mpps_create(
                attributes=n_create(ssa_item()), calling_ae="CT1", sop_instance_uid=uid
            )
        )
        == 0x0111
    )


def test_unknown_instance_is_0112():
    assert (
        _code(
            lambda: services.mpps_update(
                sop_instance_uid="1.2.3", modifications=n_set_final(), calling_ae="CT1"
            )
        )
        == 0x0112
    )


def test_set_after_final_is_0110_and_changes_nothing():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(), calling_ae="CT1"
    )
    assert (
        _code(
            lambda: services.mpps_update(
                sop_instance_uid=mpps.sop_instance_uid,
                modifications=n_set_final("DISCONTINUED"),
                calling_ae="CT1",
            )
        )
        == 0x0110
    )
    mpps.refresh_from_db()
    assert mpps.status == MPPSStatus.COMPLETED


@pytest.mark.parametrize("sent_empty_at_create,expected", [(True, 0x0121), (False, 0x0120)])
def test_final_without_end_time_is_refused(sent_empty_at_create, expected):
    proc = _proc()
    create = n_create(for_procedure(proc))
    if not sent_empty_at_create:
        del create.PerformedProcedureStepEndTime
    mpps = services.mpps_create(attributes=create, calling_ae="CT1")
    mod = n_set_final()
    del mod.PerformedProcedureStepEndTime
    assert (
        _code(
            lambda: services.mpps_update(
                sop_instance_uid=mpps.sop_instance_uid, modifications=mod, calling_ae="CT1"
            )
        )
        == expected
    )
    mpps.refresh_from_db()
    assert mpps.status == MPPSStatus.IN_PROGRESS


def test_creation_only_attribute_in_set_is_0106():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    mod = n_set_final()
    mod.Modality = "MR"
    assert (
        _code(
            lambda: services.mpps_update(
                sop_instance_uid=mpps.sop_instance_uid, modifications=mod, calling_ae="CT1"
            )
        )
        == 0x0106
    )
    # the same value repeated is harmless
    mod.Modality = "CT"
    services.mpps_update(sop_instance_uid=mpps.sop_instance_uid, modifications=mod, calling_ae="CT1")


def test_status_out_of_range_is_0116():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    mod = n_set_final("FINISHED")
    assert (
        _code(
            lambda: services.mpps_update(
                sop_instance_uid=mpps.sop_instance_uid, modifications=mod, calling_ae="CT1"
            )
        )
        == 0x0116
    )


def test_mpps_for_a_cancelled_procedure_is_kept_with_state_exception():
    proc = _proc()
    scheduling_services.procedure_cancel(procedure=proc, reason="patient left")
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    assert list(mpps.procedures.all()) == [proc]
    assert MPPSException.objects.get(mpps=mpps).reason == "state"
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.CANCELLED


def test_manual_start_then_mpps_is_the_append_case():
    proc = _proc()
    services.console_start(procedure=proc, actor=None)
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    assert list(mpps.procedures.all()) == [proc]
    assert not MPPSException.objects.filter(mpps=mpps).exists()


def test_procedure_completes_when_its_last_mpps_ends():
    proc = _proc()
    first = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    second = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=first.sop_instance_uid, modifications=n_set_final(), calling_ae="CT1"
    )
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS  # the second step is still under way
    reason = ("110514", "DCM", "Incorrect worklist entry selected")
    services.mpps_update(
        sop_instance_uid=second.sop_instance_uid,
        modifications=n_set_final("DISCONTINUED", series=(), reason=reason),
        calling_ae="CT1",
    )
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED  # one step completed: the exam is done
    assert not MPPSException.objects.filter(mpps__in=[first, second]).exists()


def test_console_completion_before_mpps_completion_is_not_an_exception():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.console_complete(procedure=proc, actor=None)
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(), calling_ae="CT1"
    )
    assert not MPPSException.objects.filter(mpps=mpps).exists()


def test_mpps_discontinued_after_console_completion_is_an_exception():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.console_complete(procedure=proc, actor=None)
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid,
        modifications=n_set_final("DISCONTINUED", series=(), reason=("110526", "DCM", "Resource failure")),
        calling_ae="CT1",
    )
    assert MPPSException.objects.get(mpps=mpps).reason == "state"
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED


def test_get_returns_stored_attributes():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    ds = services.mpps_get(
        sop_instance_uid=mpps.sop_instance_uid, calling_ae="CT1", tags=[0x00400252, 0x00080060]
    )
    assert ds.PerformedProcedureStepStatus == "IN PROGRESS" and ds.Modality == "CT"
    assert "PatientName" not in ds


def test_wrong_patient_is_linked_but_flagged():
    proc = _proc()
    mpps = services.mpps_create(
        attributes=n_create(for_procedure(proc), patient_id="SOMEONE-ELSE"), calling_ae="CT1"
    )
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS
    exc = MPPSException.objects.get(mpps=mpps)
    assert exc.reason == "patient" and "SOMEONE" not in exc.message


def test_group_case_across_patients_is_flagged():
    station = StationFactory(ae_title="CT1")
    a = _proc(station)
    b = make_order(station=station, start=a.steps.get().end).procedures.get()
    assert a.order.patient_id != b.order.patient_id
    mpps = services.mpps_create(attributes=n_create(for_procedure(a), for_procedure(b)), calling_ae="CT1")
    assert "group" in set(MPPSException.objects.filter(mpps=mpps).values_list("reason", flat=True))


def test_matching_patient_raises_no_exception():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    assert not MPPSException.objects.filter(mpps=mpps).exists()


def test_mpps_film_consumption_takes_films_out_of_stock():
    department = pytest.importorskip("department.models")
    film = department.MaterialItem.objects.create(
        code="FILM1417", name="Dry film 14x17", kind="film", unit="sheet", stock_level=100
    )
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(films=2), calling_ae="CT1"
    )
    film.refresh_from_db()
    assert film.stock_level == 98
    usage = department.MaterialUsage.objects.get(procedure=proc)
    assert (usage.source, usage.source_ae) == ("mpps", "CT1")


def test_unknown_film_material_does_not_fail_the_modality():
    proc = _proc()
    mpps = services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1")
    services.mpps_update(
        sop_instance_uid=mpps.sop_instance_uid, modifications=n_set_final(films=1), calling_ae="CT1"
    )
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_last_two_steps_ending_at_once_complete_the_procedure(monkeypatch):
    import threading
    import time

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    proc = _proc()
    steps = [
        services.mpps_create(attributes=n_create(for_procedure(proc)), calling_ae="CT1") for _ in range(2)
    ]
    barrier = threading.Barrier(2)
    errors: list[Exception] = []
    original = services._finish_procedure

    def slow_finish(*args, **kwargs):
        # Widen the window: both steps are final (uncommitted) before either looks at the other.
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_finish_procedure", slow_finish)

    def finish(uid):
        try:
            barrier.wait()
            services.mpps_update(sop_instance_uid=uid, modifications=n_set_final(), calling_ae="CT1")
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finish, args=(m.sop_instance_uid,)) for m in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED
    assert not MPPSException.objects.exists()


@pytest.mark.parametrize("uid", ["1.2.03", "1.2.abc", "1." + "2" * 70])
def test_invalid_instance_uid_is_0106(uid):
    assert (
        _code(
            lambda: services.mpps_create(
                attributes=n_create(ssa_item()), calling_ae="CT1", sop_instance_uid=uid
            )
        )
        == 0x0106
    )
    assert not PerformedProcedureStep.objects.exists()


def test_missing_type2_attributes_are_accepted():
    ds = n_create(ssa_item())
    for keyword in (
        "PatientName",
        "PatientBirthDate",
        "PerformedProcedureStepEndDate",
        "PerformedSeriesSequence",
    ):
        delattr(ds, keyword)
    mpps = services.mpps_create(attributes=ds, calling_ae="CT1")
    assert mpps.status == MPPSStatus.IN_PROGRESS


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_duplicate_n_create_race_has_one_winner(monkeypatch):
    import threading
    import time

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    proc = _proc()
    uid = generate_uid()
    original = services._link

    def slow_link(*args, **kwargs):
        time.sleep(0.3)  # both requests are past the "exists?" check before either inserts
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_link", slow_link)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def create():
        try:
            barrier.wait()
            services.mpps_create(
                attributes=n_create(for_procedure(proc)), calling_ae="CT1", sop_instance_uid=uid
            )
            outcomes.append("ok")
        except services.MPPSError as exc:
            outcomes.append(dicom_mpps.mpps_status(exc)[0])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == sorted(["ok", 0x0111], key=str)
    assert PerformedProcedureStep.objects.filter(sop_instance_uid=uid).count() == 1
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS
