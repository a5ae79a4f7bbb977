"""Import DICOM worklist files (DCMTK ``wlmscpfs`` / Orthanc ``.wl``) into the schedule.

Each file is one Modality Worklist entry (PS3.4 Table K.6-1): patient, Imaging Service
Request, Requested Procedure and one Scheduled Procedure Step. It becomes a Patient (reused
when Patient ID + Issuer exist), an Order, a RequestedProcedure and an SPS created through
the registration and scheduling services, keeping the file's Accession Number, Requested
Procedure ID, SPS ID and Study Instance UID. One transaction per file: a file is imported
whole or not at all, and every refusal names the file and the reason.

Multi-valued Scheduled Station AE Title (0040,0001): the SPS is booked on the first AE
title's station; the others are kept as ``ScheduledStationAlternate`` rows, in order.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from audit.services import audit_record
from registration.models import Patient
from registration.services import patient_register, patient_update
from ris.errors import ApplicationError
from ris.vr import validate_ae, validate_cs, validate_lo, validate_sh, validate_ui
from scheduling.models import CharsetProfile, Modality, Priority, ProcedureType, Station
from scheduling.services import order_create, procedure_type_create, station_create

from .models import ScheduledStationAlternate

logger = logging.getLogger(__name__)

IMPORT_CODING_SCHEME = "99RISWL"

# Type 1 return keys of Table K.6-1 that an entry cannot be scheduled without.
TOP_TYPE1 = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "ScheduledProcedureStepSequence",
)
SPS_TYPE1 = (
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "Modality",
    "ScheduledProcedureStepID",
)
_CHARSET_PROFILE = {
    "ISO_IR 192": CharsetProfile.UTF8,
    "GB18030": CharsetProfile.GB18030,
    "ISO_IR 100": CharsetProfile.LATIN1,
}


class WorklistFileError(Exception):
    """The file cannot be imported; the message says why (shown with the file name)."""


@dataclass
class ImportResult:
    name: str
    ok: bool
    message: str = ""
    accession_number: str = ""
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Reading and mapping (pure: no database)


def read_worklist_file(source: str | os.PathLike | BinaryIO) -> Dataset:
    """A DICOM file with or without meta header (wlmscpfs writes both kinds)."""
    try:
        ds = dcmread(source, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise WorklistFileError(f"not a DICOM file ({exc.__class__.__name__})") from exc
    try:
        ds.decode()  # apply (0008,0005) now, so a bad character set is this file's error
    except (LookupError, ValueError) as exc:
        raise WorklistFileError(f"cannot decode the character set ({exc})") from exc
    if len(ds) == 0:
        raise WorklistFileError("no data elements (not a DICOM file?)")
    return ds


def _str(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception as exc:  # a malformed element raises on access
        raise WorklistFileError(f"{keyword} cannot be read ({exc})") from exc
    if value is None:
        return ""
    if type(value).__name__ == "MultiValue" or isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    if type(value).__name__ == "MultiValue" or isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()] if str(value).strip() else []


def _require(ds: Dataset, keywords: Iterable[str], where: str = "") -> None:
    for keyword in keywords:
        if keyword not in ds:
            raise WorklistFileError(f"missing Type 1 attribute {keyword}{where}")
        elem = ds[keyword]
        if elem.VR == "SQ":
            if not elem.value:
                raise WorklistFileError(f"empty Type 1 sequence {keyword}{where}")
        elif elem.is_empty or not str(elem.value).strip():
            raise WorklistFileError(f"empty Type 1 attribute {keyword}{where}")


def _check(validator, value: str, label: str) -> str:
    try:
        validator(value)
    except ValidationError as exc:
        raise WorklistFileError(f"{label} {value!r}: {' '.join(exc.messages)}") from exc
    return value


def _parse_da(value: str, label: str) -> date:
    try:
        return datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError as exc:
        raise WorklistFileError(f"{label} {value!r} is not a DICOM date (YYYYMMDD)") from exc


def _parse_tm(value: str, label: str) -> time:
    raw = value.strip().replace(":", "")
    digits = raw.split(".", 1)[0]
    try:
        if len(digits) not in (2, 4, 6):
            raise ValueError
        hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
        return time(hh, mm, ss)
    except ValueError as exc:
        raise WorklistFileError(f"{label} {value!r} is not a DICOM time (HHMMSS)") from exc


def _name_fields(pn) -> dict:
    """PN → the registration name fields (alphabetic, ideographic, phonetic groups)."""
    fields: dict[str, str] = {}
    alpha = str(getattr(pn, "alphabetic", "") or "")
    parts = [*alpha.split("^"), "", "", "", "", ""][:5]
    for key, part in zip(
        ("family_name", "given_name", "middle_name", "name_prefix", "name_suffix"), parts, strict=True
    ):
        if part.strip():
            fields[key] = part.strip()
    ideo = [*str(getattr(pn, "ideographic", "") or "").split("^"), "", ""][:2]
    phon = [*str(getattr(pn, "phonetic", "") or "").split("^"), "", ""][:2]
    for key, part in zip(("ideographic_family", "ideographic_given"), ideo, strict=True):
        if part.strip():
            fields[key] = part.strip()
    for key, part in zip(("phonetic_family", "phonetic_given"), phon, strict=True):
        if part.strip():
            fields[key] = part.strip()
    return fields


@dataclass
class WorklistEntry:
    patient_id: str
    issuer: str
    patient_fields: dict
    accession_number: str
    priority: str
    order_fields: dict
    study_instance_uid: str
    requested_procedure_id: str
    procedure_description: str
    procedure_code: tuple[str, str, str] | None
    station_ae_titles: list[str]
    station_name: str
    location: str
    start: datetime
    modality: str
    sps_id: str
    step_fields: dict
    performing_physician: str
    charset: str
    warnings: list[str] = field(default_factory=list)


def entry_from_dataset(ds: Dataset) -> WorklistEntry:
    """Map one worklist dataset to what the RIS stores; raises WorklistFileError with a reason."""
    _require(ds, TOP_TYPE1)
    steps = list(ds.ScheduledProcedureStepSequence)
    if len(steps) != 1:
        raise WorklistFileError(f"Scheduled Procedure Step Sequence has {len(steps)} items; one is expected")
    sps = steps[0]
    _require(sps, SPS_TYPE1, " in the Scheduled Procedure Step Sequence")
    warnings: list[str] = []

    charset = _values(ds, "SpecificCharacterSet")
    patient_fields = _name_fields(ds.PatientName)
    if not patient_fields.get("family_name") and not patient_fields.get("ideographic_family"):
        raise WorklistFileError("Patient's Name has no family name")
    birth = _str(ds, "PatientBirthDate")
    if birth:
        patient_fields["birth_date"] = _parse_da(birth, "Patient's Birth Date")
    sex = _str(ds, "PatientSex").upper()
    if sex in ("M", "F", "O"):
        patient_fields["sex"] = sex
    elif sex:
        warnings.append(f"Patient's Sex {sex!r} ignored")
    for keyword, name in (("MedicalAlerts", "medical_alerts"), ("Allergies", "allergies")):
        value = _str(ds, keyword)
        if value:
            patient_fields[name] = value[:64]
    pregnancy = ds.get("PregnancyStatus")
    if pregnancy in (1, 2, 3, 4):
        patient_fields["pregnancy_status"] = int(pregnancy)

    priority = _str(ds, "RequestedProcedurePriority").upper() or Priority.ROUTINE
    if priority not in Priority.values:
        warnings.append(f"Requested Procedure Priority {priority!r} is not a DICOM term; ROUTINE used")
        priority = Priority.ROUTINE
    order_fields = {
        "referring_physician": _str(ds, "ReferringPhysicianName"),
        "requesting_physician": _str(ds, "RequestingPhysician"),
        "requesting_service": _str(ds, "RequestingService"),
        "reason": _str(ds, "ReasonForTheRequestedProcedure"),
        "admission_id": _str(ds, "AdmissionID"),
        "placer_order_number": _str(ds, "PlacerOrderNumberImagingServiceRequest"),
        "filler_order_number": _str(ds, "FillerOrderNumberImagingServiceRequest"),
    }
    order_fields = {k: v for k, v in order_fields.items() if v}

    code = None
    code_seq = ds.get("RequestedProcedureCodeSequence") or []
    if code_seq:
        item = code_seq[0]
        if _str(item, "CodeValue"):
            code = (
                _str(item, "CodeValue"),
                _str(item, "CodingSchemeDesignator") or "99LOCAL",
                _str(item, "CodeMeaning"),
            )

    ae_titles = _values(sps, "ScheduledStationAETitle")
    if not ae_titles:
        raise WorklistFileError("empty Type 1 attribute ScheduledStationAETitle")
    for ae in ae_titles:
        _check(validate_ae, ae, "Scheduled Station AE Title")
    modality = _check(validate_cs, _str(sps, "Modality").upper(), "Modality")
    day = _parse_da(_str(sps, "ScheduledProcedureStepStartDate"), "SPS Start Date")
    at = _parse_tm(_str(sps, "ScheduledProcedureStepStartTime"), "SPS Start Time")
    start = timezone.make_aware(datetime.combine(day, at), timezone.get_current_timezone())
    step_fields = {
        "modality": modality,
        "description": _str(sps, "ScheduledProcedureStepDescription"),
        "pre_medication": _str(sps, "PreMedication"),
        "contrast_agent": _str(sps, "RequestedContrastAgent"),
    }
    if not step_fields["description"]:
        protocol = (sps.get("ScheduledProtocolCodeSequence") or [Dataset()])[0]
        step_fields["description"] = _str(protocol, "CodeMeaning")[:64]
    step_fields = {k: v for k, v in step_fields.items() if v}
    comments = _str(sps, "CommentsOnTheScheduledProcedureStep")
    if comments:
        warnings.append("Comments on the Scheduled Procedure Step are not kept")
    return WorklistEntry(
        patient_id=_check(validate_lo, _str(ds, "PatientID"), "Patient ID"),
        issuer=_str(ds, "IssuerOfPatientID") or settings.RIS_ISSUER_OF_PATIENT_ID,
        patient_fields=patient_fields,
        accession_number=_str(ds, "AccessionNumber"),
        priority=priority,
        order_fields=order_fields,
        study_instance_uid=_check(validate_ui, _str(ds, "StudyInstanceUID"), "Study Instance UID"),
        requested_procedure_id=_check(
            validate_sh, _str(ds, "RequestedProcedureID"), "Requested Procedure ID"
        ),
        procedure_description=_str(ds, "RequestedProcedureDescription"),
        procedure_code=code,
        station_ae_titles=ae_titles,
        station_name=_str(sps, "ScheduledStationName"),
        location=_str(sps, "ScheduledProcedureStepLocation"),
        start=start,
        modality=modality,
        sps_id=_check(validate_sh, _str(sps, "ScheduledProcedureStepID"), "SPS ID"),
        step_fields=step_fields,
        performing_physician=_str(sps, "ScheduledPerformingPhysicianName"),
        charset=charset[-1] if charset else "",
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------
# Writing (one transaction per file)


def _station(entry: WorklistEntry, ae: str, *, create: bool, actor, first: bool) -> Station | None:
    station = Station.objects.filter(ae_title=ae).first()
    if station is not None:
        if not station.active:
            raise WorklistFileError(f"station {ae} is inactive")
        return station
    if not create:
        return None
    modality = entry.modality if entry.modality in Modality.values else Modality.OT
    name = (entry.station_name if first and entry.station_name else ae)[:16]
    try:
        return station_create(
            ae_title=ae,
            name=name,
            modality=modality,
            room=(entry.location if first else "")[:16],
            charset_profile=_CHARSET_PROFILE.get(entry.charset, CharsetProfile.UTF8),
            actor=actor,
            detail={"import": True},
        )
    except ApplicationError as exc:
        raise WorklistFileError(f"station {ae} cannot be created: {_first_message(exc)}") from exc


def _procedure_type(entry: WorklistEntry, *, actor) -> ProcedureType:
    if entry.procedure_code:
        value, scheme, meaning = entry.procedure_code
    else:
        # No Requested Procedure Code Sequence in the file: one catalog entry per modality
        # and description, so the description survives and reports can group by it.
        value, scheme = f"WL{entry.modality}"[:16], IMPORT_CODING_SCHEME
        meaning = f"Imported {entry.modality} procedure"
    value, scheme = value[:16], scheme[:16]
    ptype = ProcedureType.objects.filter(coding_scheme=scheme, code_value=value).first()
    if ptype is not None:
        return ptype
    try:
        return procedure_type_create(
            code_value=value,
            coding_scheme=scheme,
            code_meaning=(meaning or entry.procedure_description or value)[:64],
            modality=entry.modality if entry.modality in Modality.values else Modality.OT,
            actor=actor,
            detail={"import": True},
        )
    except ApplicationError as exc:
        raise WorklistFileError(f"procedure code {value!r} cannot be added: {_first_message(exc)}") from exc


def _first_message(exc: ApplicationError) -> str:
    """The first field error (as ValidationError.messages[0] would give), else the message."""
    for errors in (exc.fields or {}).values():
        if errors:
            return str(errors[0])
    return str(exc.message)


def _patient(entry: WorklistEntry, *, actor) -> tuple[Patient, bool]:
    existing = Patient.objects.filter(issuer=entry.issuer, patient_id=entry.patient_id).first()
    if existing is not None:
        if existing.merged_into_id:
            existing = Patient.objects.get(pk=existing.merged_into_id)
        return existing, False
    patient = patient_register(
        actor=actor, patient_id=entry.patient_id, issuer=entry.issuer, **entry.patient_fields
    )
    return patient, True


def _merge_alerts(patient: Patient, entry: WorklistEntry, *, actor) -> list[str]:
    """A known patient keeps its demographics, but no allergy or alert in a file is dropped."""
    notes = []
    changes = {}
    for name, label in (("allergies", "Allergies"), ("medical_alerts", "Medical Alerts")):
        incoming = entry.patient_fields.get(name, "")
        current = getattr(patient, name)
        if not incoming or incoming.casefold() in current.casefold():
            continue
        merged = f"{current}, {incoming}" if current else incoming
        if len(merged) > 64:
            notes.append(f"{label} {incoming!r} not added: the patient's value would exceed 64 characters")
            continue
        changes[name] = merged
        notes.append(f"{label} {incoming!r} added to the registered patient")
    if changes:
        patient_update(patient=patient, actor=actor, **changes)
    if not notes:
        notes.append("patient already registered; demographics left unchanged")
    return notes


def import_entry(entry: WorklistEntry, *, create_stations: bool = False, actor=None) -> ImportResult:
    """Create patient, order, procedure and step for one entry (caller holds the transaction)."""
    warnings = list(entry.warnings)
    first_ae, *others = entry.station_ae_titles
    station = _station(entry, first_ae, create=create_stations, actor=actor, first=True)
    if station is None:
        raise WorklistFileError(
            f"unknown station {first_ae} (register it, or let the import create unknown stations)"
        )
    alternates = []
    for ae in others:
        if ae == first_ae or ae in alternates:
            continue
        if _station(entry, ae, create=create_stations, actor=actor, first=False) is None:
            warnings.append(f"further station {ae} is not registered; kept as an AE title only")
        alternates.append(ae)
    patient, created = _patient(entry, actor=actor)
    if not created:
        warnings.extend(_merge_alerts(patient, entry, actor=actor))
    ptype = _procedure_type(entry, actor=actor)
    procedure_fields = (
        {"description": entry.procedure_description[:64]} if entry.procedure_description else {}
    )
    order = order_create(
        patient=patient,
        procedure_type=ptype,
        station=station,
        start=entry.start,
        actor=actor,
        priority=entry.priority,
        performing_physician=entry.performing_physician,
        accession_number=entry.accession_number or None,
        requested_procedure_id=entry.requested_procedure_id,
        sps_id=entry.sps_id,
        study_instance_uid=entry.study_instance_uid,
        source="import",
        check_calendar=False,
        procedure_fields=procedure_fields,
        step_fields=entry.step_fields,
        **entry.order_fields,
    )
    if not entry.accession_number:
        warnings.append(f"no Accession Number in the file; {order.accession_number} assigned")
    step = order.procedures.get().steps.get()
    ScheduledStationAlternate.objects.bulk_create(
        [
            ScheduledStationAlternate(step=step, ae_title=ae, position=i)
            for i, ae in enumerate(alternates, start=1)
        ]
    )
    return ImportResult(name="", ok=True, accession_number=order.accession_number, warnings=warnings)


def import_worklist_file(
    source: str | os.PathLike | BinaryIO,
    *,
    name: str = "",
    create_stations: bool = False,
    actor=None,
    dry_run=False,
) -> ImportResult:
    """Import one file in its own transaction; never raises for a bad file."""
    name = name or str(source)
    try:
        with warnings.catch_warnings():
            # pydicom warns about values that break their VR; the mapping below refuses
            # those with a reason naming the attribute, which is what the user needs.
            warnings.simplefilter("ignore")
            entry = entry_from_dataset(read_worklist_file(source))
        with transaction.atomic():
            result = import_entry(entry, create_stations=create_stations, actor=actor)
            if dry_run:
                transaction.set_rollback(True)
    except WorklistFileError as exc:
        return ImportResult(name=name, ok=False, message=str(exc))
    except ApplicationError as exc:
        detail = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
        return ImportResult(name=name, ok=False, message=exc.message + (f" ({detail})" if detail else ""))
    result.name = name
    # No file name in the log: sites name worklist files after patients.
    logger.info(
        "worklist file %s (%d warning(s))", "checked" if dry_run else "imported", len(result.warnings)
    )
    return result


def worklist_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named, and the ``*.wl`` files under directories named (sorted, recursive)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.wl") if p.is_file()))
        else:
            out.append(path)
    return out


def import_worklists(
    paths: Iterable[str | os.PathLike], *, create_stations: bool = False, actor=None, dry_run: bool = False
) -> list[ImportResult]:
    results = []
    for path in worklist_paths(paths):
        if not path.exists():
            results.append(ImportResult(name=str(path), ok=False, message="no such file"))
            continue
        results.append(
            import_worklist_file(
                path, name=str(path), create_stations=create_stations, actor=actor, dry_run=dry_run
            )
        )
    audit_record(
        action="worklist.import",
        actor=actor,
        object_type="worklist_import",
        object_id="",
        detail={"files": len(results), "imported": sum(r.ok for r in results), "dry_run": dry_run},
    )
    return results
