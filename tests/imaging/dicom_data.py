"""Synthetic DICOM objects for the imaging tests (no patient data, UIDs from generate_uid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from imaging.storage import file_meta_bytes


def ct_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    accession: str = "",
    patient_id: str = "PID1",
    patient_name: str = "Test^Patient",
    issuer: str = "",
    modality: str = "CT",
    instance_number: int = 1,
    z: float = 0.0,
    rows: int = 16,
    columns: int = 16,
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    charset: str | list[str] | None = "ISO_IR 192",
    study_date: str = "20260101",
    sop_class: str = CTImageStorage,
) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = "AXIAL"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = "19800102"
    ds.PatientSex = "F"
    ds.PatientAge = "046Y"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-100.0, -100.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter = window[0]
        ds.WindowWidth = window[1]
    if pixels is None:
        pixels = (np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) % 2000) + 24
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def dataset_bytes(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    fp.is_little_endian = transfer_syntax != ExplicitVRBigEndian
    write_dataset(fp, ds)
    return fp.getvalue()


def part10_bytes(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Encode like the node stores it: preamble, our File Meta, the dataset."""
    meta = file_meta_bytes(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID, transfer_syntax_uid=transfer_syntax
    )
    return meta + dataset_bytes(ds, transfer_syntax)


def write_part10(path: Path, ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    path.write_bytes(part10_bytes(ds, transfer_syntax))
    return path
