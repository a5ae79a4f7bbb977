"""Building MPPS datasets the way modalities send them (PS3.4 Table F.7.2-1)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid


def ssa_item(*, study_uid="", accession="", rp_id="", sps_id="") -> Dataset:
    item = Dataset()
    item.StudyInstanceUID = study_uid or generate_uid()
    item.AccessionNumber = accession
    item.RequestedProcedureID = rp_id
    item.ScheduledProcedureStepID = sps_id
    item.RequestedProcedureDescription = ""
    item.ScheduledProcedureStepDescription = ""
    item.ScheduledProtocolCodeSequence = []
    item.ReferencedStudySequence = []
    return item


def for_procedure(proc, *, by="uid") -> Dataset:
    step = proc.steps.first()
    if by == "uid":
        item = ssa_item(study_uid=proc.study_instance_uid)
    else:
        item = ssa_item(
            accession=proc.order.accession_number, rp_id=proc.requested_procedure_id, sps_id=step.sps_id
        )
    # Not a DICOM attribute: lets n_create() send the scheduled patient's ID, as a modality
    # that took the patient from the worklist does.
    item.ris_patient_id = proc.order.patient.patient_id
    return item


def n_create(
    *items: Dataset,
    station_ae="CT1",
    modality="CT",
    start: datetime | None = None,
    patient_id: str | None = None,
) -> Dataset:
    start = timezone.localtime(start or timezone.now())
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ScheduledStepAttributesSequence = list(items)
    ds.PatientName = "Test^Patient"
    if patient_id is None:
        patient_id = next(
            (getattr(i, "ris_patient_id", None) for i in items if hasattr(i, "ris_patient_id")), "X1"
        )
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = station_ae
    ds.PerformedStationName = station_ae
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = start.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = start.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "CHEST"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = modality
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def series_item(n_images: int, *, retrieve_ae="CT1") -> Dataset:
    item = Dataset()
    item.PerformingPhysicianName = ""
    item.ProtocolName = "CHEST"
    item.OperatorsName = ""
    item.SeriesInstanceUID = generate_uid()
    item.SeriesDescription = "axial"
    item.RetrieveAETitle = retrieve_ae
    refs = []
    for _ in range(n_images):
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    item.ReferencedImageSequence = refs
    item.ReferencedNonImageCompositeSOPInstanceSequence = []
    return item


def n_set_final(
    status="COMPLETED", *, series=(3,), end: datetime | None = None, reason=None, films=0
) -> Dataset:
    end = timezone.localtime(end or timezone.now())
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = end.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = end.strftime("%H%M%S")
    ds.PerformedSeriesSequence = [series_item(n) for n in series]
    if reason:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = reason
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    if films:
        film = Dataset()
        film.NumberOfFilms = films
        film.MediumType = "BLUE FILM"
        film.FilmSizeID = "14INX17IN"
        ds.FilmConsumptionSequence = [film]
    return ds
