"""Identifier → filter spec (worklist/mwl.py): every matching type of PS3.4 C.2.2.2. Pure."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from worklist.mwl import (
    DateMatch,
    DateTimeRange,
    EmptyMatch,
    IdentifierError,
    IntMatch,
    StringMatch,
    TimeRange,
    UIDListMatch,
    dicom_wildcard_to_like,
    parse_identifier,
)


def ident(sps: dict | None = None, **top) -> Dataset:
    ds = Dataset()
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    if sps is not None:
        item = Dataset()
        for keyword, value in sps.items():
            setattr(item, keyword, value)
        ds.ScheduledProcedureStepSequence = Sequence([item])
    return ds


def criteria(ds):
    return parse_identifier(ds).criteria


def test_universal_matching_has_no_criteria():
    q = parse_identifier(
        ident({"Modality": "", "ScheduledStationAETitle": "*"}, PatientName="", PatientID="")
    )
    assert q.criteria == []
    assert [r.spec.keyword for r in q.returns] == [
        "PatientName",
        "PatientID",
        "ScheduledProcedureStepSequence",
    ]
    assert [c.spec.keyword for c in q.returns[2].children] == ["Modality", "ScheduledStationAETitle"]


def test_single_value():
    assert criteria(ident(PatientID="P1001")) == [StringMatch("patient_id", ("P1001",))]


def test_wildcard():
    c = criteria(ident(AccessionNumber="A12*3?"))
    assert c == [StringMatch("accession", ("A12*3?",))]
    assert c[0].has_wildcards
    assert dicom_wildcard_to_like("A1_%*?\\") == "A1\\_\\%%_\\\\"


def test_multiple_values_are_ored():
    c = criteria(ident({"Modality": ["CT", "MR"]}))
    assert c == [StringMatch("sps_modality", ("CT", "MR"))]


def test_list_of_uid():
    c = criteria(ident(StudyInstanceUID=["1.2.3", "1.2.4"]))
    assert c == [UIDListMatch("study_uid", ("1.2.3", "1.2.4"))]
    with pytest.raises(IdentifierError):
        parse_identifier(ident(StudyInstanceUID="1.2.*"))


def test_empty_value_matching():
    c = criteria(ident(AdmissionID='""', PatientBirthDate='""'))
    assert EmptyMatch("admission_id") in c and EmptyMatch("birth_date") in c


def test_person_name_is_pn_matching_with_all_groups():
    c = criteria(ident(PatientName="wang*"))
    assert c == [StringMatch("patient_name", ("wang*",), pn=True)]
    c = criteria(ident(PatientName="Wang^XiaoDong=王^小东="))
    assert c[0].values[0].rstrip("=") == "Wang^XiaoDong=王^小东"


def test_date_single_and_range():
    c = criteria(ident(PatientBirthDate="19700506"))
    assert c == [DateMatch("birth_date", ((date(1970, 5, 6), date(1970, 5, 6)),))]
    c = criteria(ident(PatientBirthDate="19700101-"))
    assert c == [DateMatch("birth_date", ((date(1970, 1, 1), None),))]
    c = criteria(ident(PatientBirthDate="-19701231"))
    assert c == [DateMatch("birth_date", ((None, date(1970, 12, 31)),))]


def test_sps_start_date_alone_is_whole_days():
    c = criteria(ident({"ScheduledProcedureStepStartDate": "20260105-20260107"}))
    assert c == [
        DateTimeRange("sps_start", datetime(2026, 1, 5, 0, 0), datetime.combine(date(2026, 1, 7), time.max))
    ]


def test_combined_sps_start_date_and_time():
    # C.2.2.2.5.1: 5 January 08:00 to 7 January 18:00 (not 08:00-18:00 on each day).
    c = criteria(
        ident(
            {
                "ScheduledProcedureStepStartDate": "20260105-20260107",
                "ScheduledProcedureStepStartTime": "0800-1800",
            }
        )
    )
    assert c == [
        DateTimeRange("sps_start", datetime(2026, 1, 5, 8, 0), datetime(2026, 1, 7, 18, 0, 59, 999999))
    ]


def test_single_date_with_time_range():
    c = criteria(
        ident({"ScheduledProcedureStepStartDate": "20260105", "ScheduledProcedureStepStartTime": "-1200"})
    )
    assert c == [
        DateTimeRange("sps_start", datetime(2026, 1, 5, 0, 0), datetime(2026, 1, 5, 12, 0, 59, 999999))
    ]


def test_time_alone_is_time_of_day():
    c = criteria(ident({"ScheduledProcedureStepStartTime": "0800-10"}))
    assert c == [TimeRange("sps_start", time(8, 0), time(10, 59, 59, 999999))]


def test_sequence_matching_inside_sps_and_code_items():
    code = Dataset()
    code.CodeValue = "CTCHEST"
    code.CodeMeaning = ""
    ds = ident({"ScheduledStationAETitle": "CT1", "ScheduledProtocolCodeSequence": Sequence([code])})
    c = criteria(ds)
    assert StringMatch("station_ae", ("CT1",)) in c
    assert StringMatch("protocol_code.code_value", ("CTCHEST",)) in c


def test_int_matching_for_pregnancy_status():
    assert criteria(ident(PregnancyStatus=4)) == [IntMatch("pregnancy_status", (4,))]


def test_unsupported_keys_are_reported_not_fatal():
    ds = ident(PatientName="", EthnicGroup="", PatientComments="x")
    q = parse_identifier(ds)
    assert 0x00102160 in q.unsupported and 0x00104000 in q.unsupported
    assert [r.spec.keyword for r in q.returns] == ["PatientName"]


def test_type2_key_without_data_matches_only_empty():
    q = parse_identifier(ident(SpecialNeeds="WHEELCHAIR"))
    assert q.criteria == [StringMatch("none.SpecialNeeds", ("WHEELCHAIR",))]


@pytest.fixture(autouse=True)
def lenient_pydicom():
    """Deliberately invalid values, without pydicom's validation warnings (the node runs so too)."""
    from pydicom import config

    saved = config.settings.writing_validation_mode, config.settings.reading_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    config.settings.reading_validation_mode = config.IGNORE
    yield
    config.settings.writing_validation_mode, config.settings.reading_validation_mode = saved


@pytest.mark.parametrize(
    ("sps", "top"),
    [
        (None, {"PatientBirthDate": "1970-13-01"}),
        (None, {"PatientBirthDate": "19701301"}),
        (None, {"PatientBirthDate": "-"}),
        ({"ScheduledProcedureStepStartTime": "2500"}, {}),
        (None, {"PatientBirthDate": "19710101-19700101"}),
    ],
)
def test_malformed_values_raise(sps, top):
    ds = ident(sps, **top)
    with pytest.raises(IdentifierError):
        parse_identifier(ds)


def test_two_items_in_a_matching_sequence_is_malformed():
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = Sequence([Dataset(), Dataset()])
    ds.ScheduledProcedureStepSequence[0].Modality = "CT"
    with pytest.raises(IdentifierError):
        parse_identifier(ds)


def test_request_character_set_is_honoured():
    # A GB18030 request: the PN bytes are decoded with the request's Specific Character Set.
    from io import BytesIO

    from pydicom.filereader import read_dataset

    value = "王*".encode("gb18030")
    value += b" " if len(value) % 2 else b""
    raw = (
        b"\x08\x00\x05\x00"
        + len(b"GB18030 ").to_bytes(4, "little")
        + b"GB18030 "
        + b"\x10\x00\x10\x00"
        + len(value).to_bytes(4, "little")
        + value
    )
    ds = read_dataset(BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    q = parse_identifier(ds)
    assert q.character_set == ("GB18030",)
    assert q.criteria == [StringMatch("patient_name", ("王*",), pn=True)]
