"""Worklist file import (DCMTK wlmscpfs / Orthanc .wl): identifiers kept, whole-file-or-nothing."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from registration.models import Patient
from scheduling.models import Order, ScheduledProcedureStep, Station
from tests.factories import StationFactory
from worklist.importer import entry_from_dataset, import_worklist_file, import_worklists
from worklist.models import ScheduledStationAlternate

pytestmark = pytest.mark.django_db


def wl_file(path: Path, *, meta: bool = True, **overrides) -> Path:
    """A worklist file like the ones wlmscpfs serves; ``overrides`` set or (None) delete keys."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = "ACC100"
    ds.PatientName = "Wang^XiaoDong=王^小东"
    ds.PatientID = "PID100"
    ds.PatientBirthDate = "19800102"
    ds.PatientSex = "M"
    ds.Allergies = "Iodine"
    ds.StudyInstanceUID = generate_uid()
    ds.RequestedProcedureID = "RP100"
    ds.RequestedProcedureDescription = "CT chest"
    ds.RequestedProcedurePriority = "HIGH"
    ds.RequestingPhysician = "Li^Ming"
    sps = Dataset()
    sps.ScheduledStationAETitle = ["CT1", "CT2"]
    sps.ScheduledProcedureStepStartDate = "20260102"
    sps.ScheduledProcedureStepStartTime = "201500"
    sps.Modality = "CT"
    sps.ScheduledProcedureStepID = "SPS100"
    sps.ScheduledProcedureStepDescription = "Chest plain"
    sps.ScheduledPerformingPhysicianName = "Zhang^Wei"
    sps.RequestedContrastAgent = "Iohexol"
    ds.ScheduledProcedureStepSequence = [sps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some tests write values that break their VR on purpose
        for key, value in overrides.items():
            target = sps if key.startswith("sps_") else ds
            key = key.removeprefix("sps_")
            if value is None:
                delattr(target, key)
            else:
                setattr(target, key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if meta:
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
            ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(path, enforce_file_format=True)
        else:
            # A bare data set in Implicit VR Little Endian, as `dump2dcm -F` writes it.
            ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def test_dcmtk_examples_import_with_identifiers_kept(dcmtk_worklists):
    results = import_worklists([dcmtk_worklists], create_stations=True)
    assert [r.ok for r in results] == [True] * 10, [r.message for r in results if not r.ok]
    for path in sorted(dcmtk_worklists.glob("*.wl")):
        ds = dcmread(path)
        sps = ds.ScheduledProcedureStepSequence[0]
        order = Order.objects.get(accession_number=ds.AccessionNumber)
        proc = order.procedures.get()
        step = proc.steps.get()
        aes = (
            list(sps.ScheduledStationAETitle)
            if sps["ScheduledStationAETitle"].VM > 1
            else [sps.ScheduledStationAETitle]
        )
        assert proc.study_instance_uid == ds.StudyInstanceUID
        assert proc.requested_procedure_id == ds.RequestedProcedureID
        assert proc.description == ds.RequestedProcedureDescription
        assert order.priority == ds.RequestedProcedurePriority
        assert order.requesting_physician == str(ds.RequestingPhysician)
        assert order.patient.patient_id == ds.PatientID and order.patient.pn_alphabetic == str(ds.PatientName)
        # Patient-level alerts are merged across a patient's files, never dropped.
        assert ds.MedicalAlerts in order.patient.medical_alerts
        assert ds.Allergies in order.patient.allergies
        assert step.sps_id == sps.ScheduledProcedureStepID
        assert step.modality == sps.Modality
        assert step.description == sps.ScheduledProcedureStepDescription
        assert step.performing_physician == str(sps.ScheduledPerformingPhysicianName)
        assert step.contrast_agent == (sps.RequestedContrastAgent or "")
        assert (
            timezone.localtime(step.start).strftime("%Y%m%d%H%M%S")
            == sps.ScheduledProcedureStepStartDate + sps.ScheduledProcedureStepStartTime
        )
        assert [step.station.ae_title, *step.alternate_stations.values_list("ae_title", flat=True)] == aes
    # One patient per Patient ID: VIVALDI, HAYDN, BEETHOVEN, MOZART.
    assert Patient.objects.count() == 4
    # The first station created keeps the file's character set, name and location.
    aa32 = Station.objects.get(ae_title="AA32")
    assert (aa32.charset_profile, aa32.name, aa32.room) == ("ISO_IR 100", "STN456", "B34F56")


def test_unknown_station_is_reported_and_nothing_written(dcmtk_worklists):
    results = import_worklists([dcmtk_worklists / "wklist1.wl"])
    assert not results[0].ok and "unknown station AA32" in results[0].message
    assert not Patient.objects.exists() and not Order.objects.exists()


def test_reimport_is_refused_not_duplicated(tmp_path):
    StationFactory(ae_title="CT1")
    path = wl_file(tmp_path / "a.wl")
    assert import_worklist_file(path).ok
    again = import_worklist_file(path)
    assert not again.ok and "already in use" in again.message
    assert Order.objects.count() == 1 and ScheduledProcedureStep.objects.count() == 1


def test_chinese_name_groups_and_alternates(tmp_path):
    StationFactory(ae_title="CT1")
    result = import_worklist_file(wl_file(tmp_path / "a.wl"))
    assert result.ok and "further station CT2 is not registered; kept as an AE title only" in result.warnings
    patient = Patient.objects.get(patient_id="PID100")
    assert (patient.pn_alphabetic, patient.pn_ideographic) == ("Wang^XiaoDong", "王^小东")
    step = ScheduledProcedureStep.objects.get(sps_id="SPS100")
    assert (
        timezone.localtime(step.start).hour == 20
    )  # outside working hours: an import keeps the schedule as it was
    assert list(ScheduledStationAlternate.objects.filter(step=step).values_list("ae_title", "position")) == [
        ("CT2", 1)
    ]


def test_gb18030_file(tmp_path):
    StationFactory(ae_title="CT1")
    path = wl_file(tmp_path / "gb.wl", SpecificCharacterSet="GB18030")
    assert import_worklist_file(path).ok
    assert Patient.objects.get(patient_id="PID100").pn_ideographic == "王^小东"


@pytest.mark.parametrize(
    "override,reason",
    [
        ({"sps_ScheduledProcedureStepID": None}, "missing Type 1 attribute ScheduledProcedureStepID"),
        ({"RequestedProcedureID": ""}, "empty Type 1 attribute RequestedProcedureID"),
        ({"StudyInstanceUID": None}, "missing Type 1 attribute StudyInstanceUID"),
        ({"sps_ScheduledProcedureStepStartDate": "2026-01-02"}, "not a DICOM date"),
        ({"sps_Modality": "ct!"}, "Modality"),
        ({"ScheduledProcedureStepSequence": []}, "empty Type 1 sequence ScheduledProcedureStepSequence"),
    ],
)
def test_invalid_files_are_reported_whole(tmp_path, override, reason):
    StationFactory(ae_title="CT1")
    result = import_worklist_file(wl_file(tmp_path / "bad.wl", **override), name="bad.wl")
    assert not result.ok and result.name == "bad.wl" and reason in result.message
    assert not Patient.objects.exists() and not Order.objects.exists()


def test_failure_after_patient_creation_rolls_back_the_patient(tmp_path):
    StationFactory(ae_title="CT1")
    # The Study Instance UID is taken by an earlier import: the order fails after the patient
    # was registered in the same transaction; nothing of this file may remain.
    first = wl_file(tmp_path / "a.wl")
    assert import_worklist_file(first).ok
    uid = dcmread(first).StudyInstanceUID
    second = wl_file(
        tmp_path / "b.wl",
        PatientID="PID200",
        AccessionNumber="ACC200",
        StudyInstanceUID=uid,
        RequestedProcedureID="RP200",
        sps_ScheduledProcedureStepID="SPS200",
    )
    result = import_worklist_file(second)
    assert not result.ok
    assert not Patient.objects.filter(patient_id="PID200").exists()


def test_garbage_file_is_reported(tmp_path):
    path = tmp_path / "junk.wl"
    path.write_bytes(b"\x00\x01garbage" * 10)
    result = import_worklist_file(path)
    assert not result.ok and result.message


def test_entry_mapping_is_pure(tmp_path):
    entry = entry_from_dataset(dcmread(wl_file(tmp_path / "a.wl")))
    assert entry.station_ae_titles == ["CT1", "CT2"]
    assert entry.step_fields == {"modality": "CT", "description": "Chest plain", "contrast_agent": "Iohexol"}
    assert entry.priority == "HIGH" and entry.order_fields == {"requesting_physician": "Li^Ming"}


def test_command_reports_and_fails_on_errors(tmp_path, dcmtk_worklists):
    out = io.StringIO()
    with pytest.raises(CommandError, match="0 of 1 file"):
        call_command("import_worklists", str(dcmtk_worklists / "wklist1.wl"), stdout=out)
    assert "FAILED" in out.getvalue() and "wklist1.wl: unknown station AA32" in out.getvalue()
    out = io.StringIO()
    call_command("import_worklists", str(dcmtk_worklists), "--create-stations", "--dry-run", stdout=out)
    assert "10 of 10 file(s) checked" in out.getvalue() and not Order.objects.exists()
    call_command("import_worklists", str(dcmtk_worklists), "--create-stations", stdout=out)
    assert Order.objects.count() == 10


def test_upload_page_is_admin_only_and_imports(client_for, tmp_path):
    StationFactory(ae_title="CT1")
    url = reverse("worklist:import")
    assert client_for("technologist").get(url).status_code == 403
    admin = client_for("admin")
    assert admin.get(url).status_code == 200
    good = wl_file(tmp_path / "good.wl")
    bad = tmp_path / "bad.wl"
    bad.write_bytes(b"not dicom")
    with good.open("rb") as g, bad.open("rb") as b:
        response = admin.post(url, {"files": [g, b]})
    body = response.content.decode()
    assert response.status_code == 200 and "good.wl" in body and "bad.wl" in body
    assert Order.objects.filter(accession_number="ACC100").exists()


def test_dataset_without_meta_header(tmp_path):
    StationFactory(ae_title="CT1")
    path = wl_file(tmp_path / "bare.wl", meta=False)
    assert path.read_bytes()[128:132] != b"DICM"
    result = import_worklist_file(path)
    assert result.ok, result.message
    assert Patient.objects.get(patient_id="PID100").pn_ideographic == "王^小东"
