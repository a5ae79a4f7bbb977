"""Write a small synthetic study for an existing order, ready to send with storescu.

    manage.py imaging_demo_study <accession number> --out /tmp/demo-study [--instances 20]
    storescu -aet <station AE> -aec RIS 127.0.0.1 11112 +sd /tmp/demo-study

The objects carry the order's Accession Number, the patient's ID and name and the
procedure's Study Instance UID (as a modality would after a worklist query), so the study
links to the order. Pixel data is a synthetic phantom (no patient data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from scheduling.models import Order


class Command(BaseCommand):
    help = "Write a synthetic CT study for an order (to try the Storage SCP)."

    def add_arguments(self, parser):
        parser.add_argument("accession_number")
        parser.add_argument("--out", required=True)
        parser.add_argument("--instances", type=int, default=20)
        parser.add_argument("--size", type=int, default=256)

    def handle(self, *args, accession_number, out, instances, size, **options):
        order = Order.objects.select_related("patient").filter(accession_number=accession_number).first()
        if order is None:
            raise CommandError("no order with that Accession Number")
        procedure = order.procedures.select_related("procedure_type").first()
        patient = order.patient
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        series_uid = generate_uid()
        yy, xx = np.mgrid[0:size, 0:size]
        for i in range(instances):
            r = np.hypot(yy - size / 2, xx - size / 2)
            hu = np.where(r < size * 0.4, 40, -1000) + np.where(r < size * 0.1, 360 + i, 0)
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID = procedure.study_instance_uid
            ds.SeriesInstanceUID = series_uid
            ds.AccessionNumber = order.accession_number
            ds.PatientID = patient.patient_id
            ds.IssuerOfPatientID = patient.issuer
            ds.PatientName = patient.dicom_name
            ds.PatientSex = patient.sex
            ds.Modality = procedure.procedure_type.modality
            ds.StudyDescription = procedure.description[:64]
            ds.StudyDate = ds.SeriesDate = "20260101"
            ds.StudyTime = "120000"
            ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
            ds.ImagePositionPatient = [-size * 0.35, -size * 0.35, i * 2.5]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.SliceThickness = 2.5
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows = ds.Columns = size
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
            ds.WindowCenter, ds.WindowWidth = 40, 400
            ds.PixelData = (hu + 1024).clip(0, 4095).astype(np.uint16).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.save_as(folder / f"IM{i + 1:04d}.dcm", enforce_file_format=True)
        self.stdout.write(f"wrote {instances} objects to {folder}")
