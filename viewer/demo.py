"""A synthetic CT volume with known geometry, written through the normal ingest path.

Used by ``seed_viewer_demo`` (the demo exam on the reading worklist), the viewer's browser
tests and ``bench/viewer.py``. The phantom: soft tissue (40 HU) filling the field, a bright
sphere (``sphere_hu``) and a dark cavity (``cavity_hu``, air) at known patient positions.
No patient data: names and IDs come from the order it is made for.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

TISSUE_HU = 40
DEMO_PREFIX = "Viewer demo:"
INTERCEPT = -1024


@dataclass
class Phantom:
    rows: int = 256
    columns: int = 256
    slices: int = 100
    pixel_spacing: float = 0.8  # mm, rows and columns
    slice_spacing: float = 2.0  # mm
    origin: tuple[float, float, float] = (-102.4, -102.4, -100.0)  # centre of the first voxel
    sphere_center: tuple[float, float, float] = (30.0, 0.0, 0.0)  # mm (patient, LPS)
    sphere_radius: float = 20.0
    sphere_hu: int = 1000
    cavity_center: tuple[float, float, float] = (-35.0, 10.0, 0.0)
    cavity_radius: float = 15.0
    cavity_hu: int = -1000
    slice_thickness: float | None = None
    extra: dict = field(default_factory=dict)

    def z(self, k: int) -> float:
        return self.origin[2] + k * self.slice_spacing

    def hu_slice(self, k: int) -> np.ndarray:
        y = self.origin[1] + np.arange(self.rows)[:, None] * self.pixel_spacing
        x = self.origin[0] + np.arange(self.columns)[None, :] * self.pixel_spacing
        z = self.z(k)
        hu = np.full((self.rows, self.columns), TISSUE_HU, dtype=np.int32)
        for (cx, cy, cz), r, value in (
            (self.sphere_center, self.sphere_radius, self.sphere_hu),
            (self.cavity_center, self.cavity_radius, self.cavity_hu),
        ):
            hu[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r] = value
        return hu


def datasets(
    phantom: Phantom,
    *,
    study_uid: str,
    accession: str = "",
    patient_id: str = "",
    issuer: str = "",
    patient_name: str = "",
    patient_sex: str = "",
    birth_date: str = "",
    description: str = "CT phantom",
    series_description: str = "Axial 2.0 mm",
    study_date: str = "20260101",
    series_uid: str | None = None,
    positions: list[float] | None = None,
) -> Iterator[Dataset]:
    """One CT Image Storage dataset per slice (uncompressed, 16-bit unsigned + rescale)."""
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    for k in range(phantom.slices):
        z = positions[k] if positions is not None else phantom.z(k)
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.AccessionNumber = accession
        ds.PatientID = patient_id
        if issuer:
            ds.IssuerOfPatientID = issuer
        ds.PatientName = patient_name
        ds.PatientSex = patient_sex
        ds.PatientBirthDate = birth_date
        ds.Modality = "CT"
        ds.StudyDescription = description[:64]
        ds.SeriesDescription = series_description
        ds.StudyDate = ds.SeriesDate = study_date
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "CHEST"
        ds.ImagePositionPatient = [phantom.origin[0], phantom.origin[1], z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [phantom.pixel_spacing, phantom.pixel_spacing]
        ds.SliceThickness = phantom.slice_thickness or phantom.slice_spacing
        ds.SliceLocation = z
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = phantom.rows, phantom.columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, INTERCEPT, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = (phantom.hu_slice(k) - INTERCEPT).clip(0, 4095).astype(np.uint16).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        for key, value in phantom.extra.items():
            setattr(ds, key, value)
        yield ds


def receive_and_ingest(items, *, calling_ae: str = "CT01", workdir: Path | None = None) -> str:
    """Store each dataset through ``imaging.services.object_receive`` and index the study.

    ``items`` are datasets (their ``file_meta`` names the transfer syntax; compressed ones must
    already carry encapsulated pixel data). Returns the Study Instance UID.
    """
    from imaging import services

    study_uid = ""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for n, ds in enumerate(items):
            path = Path(tmp) / f"{n:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            services.object_receive(
                path=path,
                calling_ae=calling_ae,
                command_sop_class_uid=ds.SOPClassUID,
                command_sop_instance_uid=ds.SOPInstanceUID,
            )
            study_uid = ds.StudyInstanceUID
            path.unlink()
    if study_uid:
        services.study_ingest(study_instance_uid=study_uid)
    return study_uid


def for_procedure(procedure, phantom: Phantom | None = None, **kwargs) -> Iterator[Dataset]:
    """Datasets carrying the order's identifiers (as a modality would after a worklist query)."""
    order = procedure.order
    patient = order.patient
    return datasets(
        phantom or Phantom(),
        study_uid=procedure.study_instance_uid,
        accession=order.accession_number,
        patient_id=patient.patient_id,
        issuer=patient.issuer,
        patient_name=patient.dicom_name,
        patient_sex=patient.sex,
        birth_date=patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        **{"description": procedure.description or "CT", **kwargs},
    )
