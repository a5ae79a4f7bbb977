"""Header → index mapping (pure functions, unit-tested).

Reads a stored object's attributes up to, not including, Pixel Data (no pixel decoding on
the ingest path) and maps them to the Study/Series/Instance fields (PS3.3 C.7.1.1 Patient,
C.7.2.1 General Study, C.7.2.2 Patient Study, C.7.3.1 General Series, C.7.6.1 General
Image, C.7.6.2 Image Plane, C.7.6.3 Image Pixel, C.11.2 VOI LUT, C.11.1 Modality LUT).
pydicom decodes text with the object's Specific Character Set (0008,0005), including
GB18030, GBK and ISO 2022 IR 58 with code extensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


@dataclass
class Headers:
    patient: dict = field(default_factory=dict)
    study: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    instance: dict = field(default_factory=dict)


def _s(ds: Dataset, keyword: str, limit: int = 64) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def _first_float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str, n: int) -> list[float] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        values = [float(v) for v in (value if isinstance(value, MultiValue) else [value])]
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def parse_da(value: str) -> date | None:
    value = (value or "").strip()
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def person_name(ds: Dataset, keyword: str) -> str:
    """The decoded PN with its component groups (``Wang^XiaoDong=王^小东=``)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue):
        value = value[0]
    groups = [value.alphabetic, value.ideographic, value.phonetic]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)[:200]


def _accession_issuer(ds: Dataset) -> str:
    seq = ds.get("IssuerOfAccessionNumberSequence")
    if not seq:
        return ""
    item = seq[0]
    return _s(item, "LocalNamespaceEntityID") or _s(item, "UniversalEntityID")


def _issuer_of_patient_id(ds: Dataset) -> str:
    issuer = _s(ds, "IssuerOfPatientID")
    if issuer:
        return issuer
    seq = ds.get("IssuerOfPatientIDQualifiersSequence")
    if seq:
        return _s(seq[0], "UniversalEntityID")
    return ""


def read_dataset(path: Path | str) -> Dataset:
    """Parse headers only: stop before Pixel Data, values decoded lazily."""
    return pydicom.dcmread(str(path), stop_before_pixels=True)


def extract(ds: Dataset) -> Headers:
    h = Headers()
    h.patient = {
        "dicom_patient_id": _s(ds, "PatientID"),
        "issuer_of_patient_id": _issuer_of_patient_id(ds),
        "patient_name": person_name(ds, "PatientName"),
        "patient_birth_date": parse_da(_s(ds, "PatientBirthDate")),
        "patient_sex": _s(ds, "PatientSex", 16),
    }
    h.study = {
        "accession_number": _s(ds, "AccessionNumber", 16),
        "accession_issuer": _accession_issuer(ds),
        "study_id": _s(ds, "StudyID", 16),
        "study_date": parse_da(_s(ds, "StudyDate")),
        "study_time": _s(ds, "StudyTime", 16),
        "description": _s(ds, "StudyDescription"),
        "referring_physician": person_name(ds, "ReferringPhysicianName"),
        "patient_age": _s(ds, "PatientAge", 4),
        "specific_character_set": _s(ds, "SpecificCharacterSet"),
    }
    h.series = {
        "series_number": _int(ds, "SeriesNumber"),
        "modality": _s(ds, "Modality", 16),
        "body_part": _s(ds, "BodyPartExamined", 16),
        "patient_position": _s(ds, "PatientPosition", 16),
        "view_position": _s(ds, "ViewPosition", 16),
        "series_date": parse_da(_s(ds, "SeriesDate")),
        "series_time": _s(ds, "SeriesTime", 16),
        "description": _s(ds, "SeriesDescription"),
    }
    h.instance = {
        "instance_number": _int(ds, "InstanceNumber"),
        "image_type": _s(ds, "ImageType", 128),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "number_of_frames": _int(ds, "NumberOfFrames"),
        "photometric_interpretation": _s(ds, "PhotometricInterpretation", 16),
        "window_center": _first_float(ds, "WindowCenter"),
        "window_width": _first_float(ds, "WindowWidth"),
        "rescale_slope": _first_float(ds, "RescaleSlope"),
        "rescale_intercept": _first_float(ds, "RescaleIntercept"),
        "rescale_type": _s(ds, "RescaleType", 16),
        "image_position": _floats(ds, "ImagePositionPatient", 3),
        "image_orientation": _floats(ds, "ImageOrientationPatient", 6),
        "pixel_spacing": _floats(ds, "PixelSpacing", 2),
        "slice_thickness": _first_float(ds, "SliceThickness"),
    }
    return h
