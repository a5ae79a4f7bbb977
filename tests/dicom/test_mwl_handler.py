"""The MWL C-FIND handler with fake events (no network): responses, statuses, scope, charsets."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ris.dicom.policy import STATION_FIELDS, StationInfo
from worklist import dicom_mwl
from worklist.mwl_response import decode_identifier

from .conftest import at_today, schedule

pytestmark = [pytest.mark.postgres]

# PS3.5 Annex J: "Wang^XiaoDong=王^小東=" in UTF-8 (J.1) and "Wang^XiaoDong=王^小东=" in GB18030 (J.3).
J1_UTF8 = bytes.fromhex("57616e675e5869616f446f6e673de78e8b5ee5b08fe69db13d")
J3_GB18030 = bytes.fromhex("57616e675e5869616f446f6e673dcdf55ed0a1b6ab3d")


@pytest.fixture(autouse=True)
def _lenient_pydicom():
    from pydicom import config

    saved = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    config.settings.reading_validation_mode = config.IGNORE
    yield
    config.settings.writing_validation_mode, config.settings.reading_validation_mode = saved


class FakeEvent:
    """What the handler reads from a pynetdicom C-FIND event."""

    def __init__(self, identifier, station=None, *, explicit=True, cancel_after=None):
        info = None
        if station is not None:
            info = StationInfo(**{f: getattr(station, f) for f in STATION_FIELDS})
        self.identifier = identifier
        self.assoc = SimpleNamespace(
            ris_station=info,
            requestor=SimpleNamespace(ae_title=station.ae_title if station else "TEST", address="127.0.0.1"),
        )
        self.context = SimpleNamespace(
            transfer_syntax=ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
        )
        self._cancel_after = cancel_after
        self._asked = 0

    @property
    def is_cancelled(self):
        self._asked += 1
        return self._cancel_after is not None and self._asked > self._cancel_after


def run(event):
    out = []
    for status, data in dicom_mwl.handle_find(event):
        code = status.Status if isinstance(status, Dataset) else status
        out.append((code, data, status))
    return out


def pendings(results, explicit=True):
    return [
        decode_identifier(data, explicit_vr=explicit) for code, data, _ in results if code in (0xFF00, 0xFF01)
    ]


def query(sps=None, **top):
    ds = Dataset()
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    if sps is not None:
        item = Dataset()
        for keyword, value in sps.items():
            setattr(item, keyword, value)
        ds.ScheduledProcedureStepSequence = Sequence([item])
    return ds


@pytest.fixture
def data(mwl_data):
    return mwl_data


def test_one_pending_per_sps_with_every_requested_key(data, wang):
    station = data["stations"]["CT_UTF8"]
    ident = query(
        {
            "Modality": "",
            "ScheduledStationAETitle": "",
            "ScheduledProcedureStepStartDate": "",
            "ScheduledProcedureStepStartTime": "",
            "ScheduledProcedureStepLocation": "",
            "ScheduledProcedureStepID": "",
            "ScheduledProtocolCodeSequence": Sequence([]),
            "ScheduledPerformingPhysicianName": "",
            "PreMedication": "",
            "RequestedContrastAgent": "",
        },
        PatientName="",
        PatientID="",
        PatientWeight=None,
        Allergies="",
        MedicalAlerts="",
        ReferencedStudySequence=Sequence([]),
        AccessionNumber="",
        RequestedProcedurePriority="",
        ReferringPhysicianName="",
        StudyInstanceUID="",
        RequestedProcedureCodeSequence=Sequence([]),
    )
    results = run(FakeEvent(ident, station))
    assert [r[0] for r in results] == [0xFF00, 0xFF00]  # today's and tomorrow's step of CT_UTF8
    first = pendings(results)[0]
    assert first.SpecificCharacterSet == "ISO_IR 192"
    assert first.get_item(0x00100010).value.rstrip(b" ") == "Wang^XiaoDong=王^小东=".encode()
    assert first.PatientID == "P1001"
    assert "PatientWeight" in first and first["PatientWeight"].is_empty  # Type 2, no data: zero length
    assert first.Allergies == "Iodine contrast" and first.MedicalAlerts == "Pacemaker"
    assert first.ReferencedStudySequence == []
    assert first.RequestedProcedurePriority == "STAT"
    assert str(first.ReferringPhysicianName) == "Li^Ming=李^明"
    step = data["steps"]["wang_ct"]
    assert first.StudyInstanceUID == step.requested_procedure.study_instance_uid
    assert first.AccessionNumber == step.requested_procedure.order.accession_number
    assert first.RequestedProcedureCodeSequence[0].CodeValue == "CTCHEST"
    sps = first.ScheduledProcedureStepSequence[0]
    assert sps.Modality == "CT"
    assert sps.ScheduledStationAETitle == "CT_UTF8"
    assert sps.ScheduledProcedureStepLocation == "CT-1"  # from Station.room
    assert sps.ScheduledProcedureStepID == step.sps_id
    assert sps.ScheduledProcedureStepStartDate == at_today(9).strftime("%Y%m%d")
    assert sps.ScheduledProcedureStepStartTime == "090000"
    proto = sps.ScheduledProtocolCodeSequence[0]
    assert (proto.CodeValue, proto.CodingSchemeDesignator, proto.CodeMeaning) == (
        "CTCHEST",
        "99RIS",
        "CT chest",
    )
    assert sps["PreMedication"].is_empty and sps["ScheduledPerformingPhysicianName"].is_empty


def test_implicit_vr_context_is_encoded_implicit(data):
    station = data["stations"]["CT_UTF8"]
    results = run(FakeEvent(query({"Modality": ""}, PatientName=""), station, explicit=False))
    ds = pendings(results, explicit=False)[0]
    assert str(ds.PatientName).startswith("Wang^XiaoDong")


def test_unsupported_optional_key_gives_ff01_and_is_left_out(data):
    station = data["stations"]["CT_UTF8"]
    results = run(FakeEvent(query(PatientName="", EthnicGroup=""), station))
    assert {r[0] for r in results} == {0xFF01}
    assert "EthnicGroup" not in pendings(results)[0]


def test_c_cancel_ends_with_fe00(data):
    station = data["stations"]["CT_UTF8"]
    results = run(FakeEvent(query(PatientName=""), station, cancel_after=1))
    assert [r[0] for r in results] == [0xFF00, 0xFE00]


def test_malformed_identifier_is_a900(data):
    station = data["stations"]["CT_UTF8"]
    results = run(FakeEvent(query(PatientBirthDate="1970-13-01"), station))
    assert [r[0] for r in results] == [0xA900]
    assert results[0][2].ErrorComment


def test_processing_failure_is_c001_not_an_exception(data, monkeypatch):
    def broken(**_kwargs):
        raise OperationalError("database went away")

    monkeypatch.setattr(dicom_mwl, "mwl_query", broken)
    results = run(FakeEvent(query(PatientName=""), data["stations"]["CT_UTF8"]))
    assert [r[0] for r in results] == [0xC001]


def test_result_cap_ends_with_b001(data, settings):
    settings.RIS_MWL_RESULT_CAP = 1
    results = run(FakeEvent(query(PatientName=""), data["stations"]["CT_UTF8"]))
    assert [r[0] for r in results] == [0xFF00, 0xB001]


def test_one_query_whatever_the_number_of_matches(data, wang):
    station = data["stations"]["CT_UTF8"]
    ident = query({"Modality": "", "ScheduledStationAETitle": ""}, PatientName="", AccessionNumber="")
    with CaptureQueriesContext(connection) as few:
        assert len(pendings(run(FakeEvent(ident, station)))) == 2
    for hour in range(10, 22):
        schedule(patient=wang, station=station, start=at_today(hour) + timedelta(days=2))
    with CaptureQueriesContext(connection) as many:
        assert len(pendings(run(FakeEvent(ident, station)))) == 14
    assert len(few.captured_queries) == len(many.captured_queries)
    selects = [q for q in many.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1  # the worklist itself; the other statement is the audit INSERT


def test_scope_station_modality_all_and_explicit_station(data):
    stations = data["stations"]
    ident = query({"ScheduledStationAETitle": ""}, PatientID="")
    assert len(pendings(run(FakeEvent(ident, stations["CT_UTF8"])))) == 2  # own station
    gb = stations["CT_GB"]
    gb.worklist_scope = "modality"
    assert {d.PatientID for d in pendings(run(FakeEvent(ident, gb)))} == {"P1001", "P1002"}
    assert len(pendings(run(FakeEvent(ident, gb)))) == 3  # every CT step, no MR
    gb.worklist_scope = "all"
    assert len(pendings(run(FakeEvent(ident, gb)))) == 4
    # A query that names a station is answered for that station whatever the scope.
    named = query({"ScheduledStationAETitle": "MR1"}, PatientID="")
    assert [d.PatientID for d in pendings(run(FakeEvent(named, stations["CT_UTF8"])))] == ["P1002"]


def test_final_steps_hidden_unless_asked(data):
    from scheduling.services import procedure_complete, procedure_start

    station = data["stations"]["CT_UTF8"]
    proc = data["steps"]["wang_ct"].requested_procedure
    procedure_start(procedure=proc)
    procedure_complete(procedure=proc)
    ident = query({"ScheduledProcedureStepStatus": ""}, PatientID="")
    assert len(pendings(run(FakeEvent(ident, station)))) == 1
    asked = query({"ScheduledProcedureStepStatus": "COMPLETED"}, PatientID="")
    found = pendings(run(FakeEvent(asked, station)))
    assert [d.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus for d in found] == ["COMPLETED"]


@pytest.mark.parametrize(
    "name", ["WANG*", "wang*", "王*", "Wang^XiaoDong", "wang^xiaodong", "=王^小东", "*Dong", "W?ng*"]
)
def test_patient_name_matches_every_group_case_insensitively(data, name):
    station = data["stations"]["CT_UTF8"]
    station.worklist_scope = "all"
    found = pendings(run(FakeEvent(query(PatientName=name, PatientID=""), station)))
    assert {d.PatientID for d in found} == {"P1001"}


@pytest.mark.parametrize("name", ["WANGX*", "李*", "Wang"])
def test_patient_name_non_matches(data, name):
    station = data["stations"]["CT_UTF8"]
    station.worklist_scope = "all"
    assert pendings(run(FakeEvent(query(PatientName=name), station))) == []


def test_date_range_and_combined_date_time(data):
    station = data["stations"]["CT_UTF8"]
    today = at_today(0).strftime("%Y%m%d")
    tomorrow = (at_today(0) + timedelta(days=1)).strftime("%Y%m%d")
    only_today = query({"ScheduledProcedureStepStartDate": today}, PatientID="")
    assert len(pendings(run(FakeEvent(only_today, station)))) == 1
    both = query({"ScheduledProcedureStepStartDate": f"{today}-{tomorrow}"}, PatientID="")
    assert len(pendings(run(FakeEvent(both, station)))) == 2
    # Combined: from today 10:00 to tomorrow 09:30 excludes today's 09:00, includes tomorrow's 09:00.
    combined = query(
        {
            "ScheduledProcedureStepStartDate": f"{today}-{tomorrow}",
            "ScheduledProcedureStepStartTime": "1000-0930",
        },
        PatientID="",
    )
    found = pendings(run(FakeEvent(combined, station)))
    assert [d.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate for d in found] == [tomorrow]


def test_list_of_uid_multiple_values_and_empty_value(data):
    station = data["stations"]["CT_UTF8"]
    station.worklist_scope = "all"
    steps = data["steps"]
    uids = [
        steps["wang_ct"].requested_procedure.study_instance_uid,
        steps["smith_mr"].requested_procedure.study_instance_uid,
    ]
    found = pendings(run(FakeEvent(query(StudyInstanceUID=uids), station)))
    assert sorted(d.StudyInstanceUID for d in found) == sorted(uids)
    found = pendings(run(FakeEvent(query({"Modality": ["MR", "US"]}, PatientID=""), station)))
    assert [d.PatientID for d in found] == ["P1002"]
    found = pendings(run(FakeEvent(query(AdmissionID='""', PatientID=""), station)))
    assert len(found) == 4
    found = pendings(run(FakeEvent(query(ReferringPhysicianName='""', PatientID=""), station)))
    assert len(found) == 3  # all but the one with a referring physician


def test_sequence_matching_on_protocol_code(data):
    station = data["stations"]["CT_UTF8"]
    station.worklist_scope = "all"
    code = Dataset()
    code.CodeValue = "MRBRAIN"
    found = pendings(
        run(FakeEvent(query({"ScheduledProtocolCodeSequence": Sequence([code])}, PatientID=""), station))
    )
    assert [d.PatientID for d in found] == ["P1002"]
    assert found[0].ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue == "MRBRAIN"


def test_alternate_stations_are_matched_and_returned_multivalued(data):
    from worklist.models import ScheduledStationAlternate

    step = data["steps"]["smith_mr"]
    ScheduledStationAlternate.objects.create(step=step, ae_title="MR2", position=1)
    station = data["stations"]["CT_UTF8"]
    found = pendings(run(FakeEvent(query({"ScheduledStationAETitle": "MR2"}, PatientID=""), station)))
    assert len(found) == 1
    assert list(found[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle) == ["MR1", "MR2"]


# ---- character-set profiles (PS3.5 6.1, Annex J) ----------------------------------------


def _raw_patient_name(data: bytes, explicit=True) -> bytes:
    ds = decode_identifier(data, explicit_vr=explicit)
    return ds.get_item(0x00100010).value


def test_gb18030_profile_bytes_are_annex_j3(data):
    station = data["stations"]["CT_GB"]
    station.worklist_scope = "all"
    results = run(FakeEvent(query(PatientName="王*", SpecificCharacterSet=""), station))
    assert len(results) == 2
    ds = decode_identifier(results[0][1], explicit_vr=True)
    assert ds.SpecificCharacterSet == "GB18030"
    assert _raw_patient_name(results[0][1]) == J3_GB18030  # 22 bytes: even, no padding


def test_utf8_profile_bytes_are_annex_j1(data, wang):
    wang.ideographic_given = "小東"  # J.1's traditional 東
    wang.save()
    station = data["stations"]["CT_UTF8"]
    results = run(FakeEvent(query(PatientName="", SpecificCharacterSet=""), station))
    raw = _raw_patient_name(results[0][1])
    assert raw == J1_UTF8 + b" "  # 25 bytes, padded to even length with a space


def test_latin1_profile_carries_pinyin_only(data):
    station = data["stations"]["CT_LATIN"]
    station.worklist_scope = "all"
    results = run(FakeEvent(query(PatientName="WANG*", RequestedProcedureDescription=""), station))
    ds = decode_identifier(results[0][1], explicit_vr=True)
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert _raw_patient_name(results[0][1]) == b"Wang^XiaoDong "


def test_ascii_profile_has_no_character_set_and_pinyin(data, wang):
    from scheduling.models import ScheduledProcedureStep

    ScheduledProcedureStep.objects.update(description="胸部CT平扫")
    station = data["stations"]["CT_ASCII"]
    station.worklist_scope = "all"
    results = run(
        FakeEvent(
            query({"ScheduledProcedureStepDescription": ""}, PatientName="王*", ReferringPhysicianName=""),
            station,
        )
    )
    ds = decode_identifier(results[0][1], explicit_vr=True)
    assert "SpecificCharacterSet" not in ds
    assert str(ds.PatientName) == "Wang^XiaoDong"
    assert str(ds.ReferringPhysicianName) == "Li^Ming"
    description = ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription
    assert description.isascii() and "Xiong" in description
