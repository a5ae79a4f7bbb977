"""MPPS SCP: handlers with fake events, and a pynetdicom SCU against the RIS node on 127.0.0.1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityPerformedProcedureStepRetrieve

from scheduling.models import ProcedureStatus
from tests.factories import StationFactory, make_order
from worklist import dicom_mpps
from worklist.models import MPPSStatus, PerformedProcedureStep

from .mpps_data import for_procedure, n_create, n_set_final, ssa_item

MPPS = str(ModalityPerformedProcedureStep)


def _assoc(ae="CT1"):
    return SimpleNamespace(requestor=SimpleNamespace(ae_title=ae))


def create_event(ds, uid=None, sop_class=MPPS):
    req = SimpleNamespace(AffectedSOPClassUID=sop_class, AffectedSOPInstanceUID=uid)
    return SimpleNamespace(request=req, attribute_list=ds, assoc=_assoc())


def set_event(ds, uid):
    req = SimpleNamespace(RequestedSOPClassUID=MPPS, RequestedSOPInstanceUID=uid)
    return SimpleNamespace(request=req, modification_list=ds, assoc=_assoc())


@pytest.fixture(autouse=True)
def _keep_test_connection(request, monkeypatch):
    # In-thread handler tests run inside the test's transaction, which close_old_connections()
    # would close; over the network the handlers run in their own threads and use it for real.
    if "transactional_db" not in request.fixturenames:
        monkeypatch.setattr(dicom_mpps, "close_old_connections", lambda: None)


def _status(result):
    status, _ds = result
    return status.Status if isinstance(status, Dataset) else status


@pytest.mark.django_db
def test_handlers_create_then_complete():
    proc = make_order(station=StationFactory(ae_title="CT1")).procedures.get()
    uid = generate_uid()
    assert _status(dicom_mpps.handle_n_create(create_event(n_create(for_procedure(proc)), uid))) == 0x0000
    assert _status(dicom_mpps.handle_n_set(set_event(n_set_final(), uid))) == 0x0000
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED


@pytest.mark.django_db
def test_handler_returns_generated_uid():
    status, reply = dicom_mpps.handle_n_create(create_event(n_create(ssa_item()), None))
    assert status == 0x0000
    assert PerformedProcedureStep.objects.filter(sop_instance_uid=reply.AffectedSOPInstanceUID).exists()


@pytest.mark.django_db
def test_handler_maps_errors_to_statuses_with_comment():
    status, _ = dicom_mpps.handle_n_set(set_event(n_set_final(), "1.2.3.4"))
    assert status.Status == 0x0112 and status.ErrorComment
    status, _ = dicom_mpps.handle_n_create(
        create_event(n_create(ssa_item()), generate_uid(), sop_class="1.2.3")
    )
    assert status.Status == 0x0118


@pytest.mark.django_db
def test_refusal_is_audited():
    from audit.models import AuditEvent

    uid = generate_uid()
    dicom_mpps.handle_n_set(set_event(n_set_final(), uid))
    event = AuditEvent.objects.get(action="mpps.set", object_id=uid)
    assert event.outcome == "failure" and event.detail["status"] == "0x0112" and event.source_ae == "CT1"


@pytest.mark.django_db
def test_handler_never_raises(monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(dicom_mpps.services, "mpps_create", boom)
    status, _ = dicom_mpps.handle_n_create(create_event(n_create(ssa_item()), generate_uid()))
    assert status.Status == 0x0110


# ---------------------------------------------------------------------------------------
# Over the network


@pytest.fixture
def mpps_scp(dicom_node):
    """The RIS DICOM node (every service module) on a free loopback port, CT1 registered."""
    StationFactory(ae_title="CT1")
    return dicom_node


@pytest.fixture
def scu(mpps_scp):
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(ModalityPerformedProcedureStepRetrieve)
    assoc = ae.associate(mpps_scp.host, mpps_scp.port, ae_title=mpps_scp.ae_title)
    assert assoc.is_established
    yield assoc
    assoc.release()


def _create(assoc, ds, uid):
    status, _ = assoc.send_n_create(ds, MPPS, uid)
    return status.Status


def _set(assoc, ds, uid):
    status, _ = assoc.send_n_set(ds, MPPS, uid)
    return status.Status


@pytest.mark.dicom
def test_scu_create_complete_and_refusals(scu):
    proc = make_order(station=StationFactory(ae_title="CT1")).procedures.get()
    uid = generate_uid()
    assert _create(scu, n_create(for_procedure(proc)), uid) == 0x0000
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.IN_PROGRESS
    assert _create(scu, n_create(for_procedure(proc)), uid) == 0x0111  # duplicate
    assert _set(scu, n_set_final(series=(2,)), uid) == 0x0000
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED
    status, _ = scu.send_n_set(n_set_final(), MPPS, uid)  # after final
    assert (status.Status, status.get("ErrorID")) == (0x0110, 0xA710)
    assert _set(scu, n_set_final(), generate_uid()) == 0x0112  # unknown
    status, ds = scu.send_n_get([0x00400252, 0x00080060], str(ModalityPerformedProcedureStepRetrieve), uid)
    assert status.Status == 0x0000 and ds.PerformedProcedureStepStatus == "COMPLETED"


@pytest.mark.dicom
def test_scu_create_discontinue(scu):
    proc = make_order(station=StationFactory(ae_title="CT1")).procedures.get()
    uid = generate_uid()
    assert _create(scu, n_create(for_procedure(proc, by="ids")), uid) == 0x0000
    mod = n_set_final("DISCONTINUED", series=(), reason=("110526", "DCM", "Resource failure"))
    assert _set(scu, mod, uid) == 0x0000
    proc.refresh_from_db()
    mpps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert proc.status == ProcedureStatus.DISCONTINUED and mpps.status == MPPSStatus.DISCONTINUED
    assert mpps.discontinuation_meaning == "Resource failure"


@pytest.mark.dicom
@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030"])
def test_scu_chinese_patient_name_round_trips(scu, charset):
    ds = n_create(ssa_item())
    ds.SpecificCharacterSet = charset
    ds.PatientName = "Wang^XiaoDong=王^小东"
    uid = generate_uid()
    assert _create(scu, ds, uid) == 0x0000
    status, got = scu.send_n_get([0x00100010, 0x00100020], str(ModalityPerformedProcedureStepRetrieve), uid)
    assert status.Status == 0x0000
    assert str(got.PatientName) == "Wang^XiaoDong=王^小东"


def test_contribute_registers_handlers():
    ae = AE()
    handlers = dict(dicom_mpps.contribute(ae))
    assert set(handlers) == {evt.EVT_N_CREATE, evt.EVT_N_SET, evt.EVT_N_GET}
    assert {str(c.abstract_syntax) for c in ae.supported_contexts} >= {MPPS}
