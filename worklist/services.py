"""Writes for the worklist app: MPPS (PS3.4 Annex F) and the technologist console.

Every procedure status change goes through the scheduling services (``procedure_start``,
``procedure_complete``, ``procedure_discontinue``) with ``source="mpps:<AE>"`` or
``"console"``; this module records what the modality performed and links it to the schedule.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from audit.services import audit_record
from ris.errors import ApplicationError, InvalidTransition, NotFound
from ris.identifiers import new_uid
from ris.lifecycle import Lifecycle, Transition
from ris.vr import validate_ui
from scheduling import services as scheduling
from scheduling.models import ProcedureStatus, RequestedProcedure, ScheduledProcedureStep

from .models import (
    FINAL_MPPS_STATUSES,
    ExamNote,
    MPPSEvent,
    MPPSException,
    MPPSExceptionReason,
    MPPSStatus,
    PerformedProcedureStep,
)

logger = logging.getLogger(__name__)


class MPPSError(ApplicationError):
    """An MPPS request the service refuses; ``tags`` are the offending attributes.

    The subclass says why; the DICOM adapter (``worklist.dicom_mpps``) maps it to the DIMSE
    status (PS3.7 Annex C, PS3.4 F.7.2).
    """

    def __init__(self, message: str, *, tags: list[int] | None = None):
        super().__init__(message)
        self.tags = tags or []


class MPPSNotFound(MPPSError):
    """No MPPS instance with that SOP Instance UID."""


class MPPSDuplicate(MPPSError):
    """An MPPS with that SOP Instance UID exists already."""


class MPPSNoLongerUpdatable(MPPSError):
    """The step is COMPLETED or DISCONTINUED (F.7.2.2.4.2)."""


class MPPSProcessingFailure(MPPSError):
    """The request could not be processed (e.g. a concurrent change)."""


class MPPSMissingAttribute(MPPSError):
    """A Type 1 attribute is absent."""


class MPPSMissingValue(MPPSError):
    """A Type 1 attribute is present but empty."""


class MPPSInvalidAttribute(MPPSError):
    """An attribute value is invalid, or may not be set by this request."""


class MPPSValueOutOfRange(MPPSError):
    """An attribute value is outside its defined terms."""


# Table F.7.2-1: Type 1 at N-CREATE (top level) and in each Scheduled Step Attributes item.
CREATE_TYPE1 = (
    "ScheduledStepAttributesSequence",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepStatus",
    "Modality",
    "PerformedProcedureStepID",
)
SSA_TYPE1 = ("StudyInstanceUID",)
# Attributes whose N-SET usage is "Not allowed" (Table F.7.2-1): set once, at N-CREATE.
CREATE_ONLY = (
    "ScheduledStepAttributesSequence",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "ReferencedPatientSequence",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedStationName",
    "PerformedLocation",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "Modality",
    "StudyID",
)
# Never stored from a request: identify the instance, not its content.
_NOT_STORED = ("SOPClassUID", "SOPInstanceUID", "AffectedSOPInstanceUID")


def _tag(keyword: str) -> int:
    return int(Tag(keyword))


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _require(ds: Dataset, keywords, *, where: str = "") -> None:
    missing = [k for k in keywords if k not in ds]
    if missing:
        raise MPPSMissingAttribute(
            f"Missing Type 1 attribute(s) {', '.join(missing)}{where}",
            tags=[_tag(k) for k in missing],
        )
    empty = [k for k in keywords if ds[k].is_empty]
    if empty:
        raise MPPSMissingValue(
            f"Empty Type 1 attribute(s) {', '.join(empty)}{where}",
            tags=[_tag(k) for k in empty],
        )


def _dicom_datetime(ds: Dataset, date_kw: str, time_kw: str) -> datetime | None:
    """DA + TM as an aware datetime: the modality's local time, or its Timezone Offset From UTC."""
    da, tm = _str(ds, date_kw), _str(ds, time_kw)
    if not da:
        return None
    try:
        day = datetime.strptime(da[:8], "%Y%m%d")
        tm = tm.replace(":", "")
        hh, mm, ss = int(tm[0:2] or 0), int(tm[2:4] or 0), int(tm[4:6] or 0)
        frac = tm.split(".", 1)[1] if "." in tm else ""
        micro = int((frac + "000000")[:6]) if frac else 0
        naive = day.replace(hour=hh, minute=mm, second=ss, microsecond=micro)
    except (ValueError, IndexError) as exc:
        raise MPPSInvalidAttribute(f"Invalid {date_kw}/{time_kw}.", tags=[_tag(date_kw)]) from exc
    offset = _str(ds, "TimezoneOffsetFromUTC")
    if offset and len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        tz = timezone.get_fixed_timezone(minutes if offset[0] == "+" else -minutes)
        return naive.replace(tzinfo=tz)
    return timezone.make_aware(naive, timezone.get_current_timezone())


def _event_time(value: datetime | None) -> datetime | None:
    """The modality's time for the event log when plausible (clock within a day), else now."""
    if value is None:
        return None
    if abs(timezone.now() - value) > timedelta(days=1):
        return None
    return value


def _to_json(ds: Dataset) -> dict:
    out = Dataset()
    for elem in ds:
        if elem.keyword in _NOT_STORED:
            continue
        out.add(elem)
    try:
        return out.to_json_dict(bulk_data_threshold=10**9)
    except Exception:  # pragma: no cover - a value pydicom cannot serialise
        logger.warning("MPPS attributes could not be serialised; kept empty")
        return {}


def _series(ds: Dataset) -> tuple[list[dict], int]:
    series = []
    total = 0
    for item in ds.get("PerformedSeriesSequence") or []:
        images = len(item.get("ReferencedImageSequence") or [])
        non_image = len(item.get("ReferencedNonImageCompositeSOPInstanceSequence") or [])
        total += images
        series.append(
            {
                "series_uid": _str(item, "SeriesInstanceUID"),
                "description": _str(item, "SeriesDescription"),
                "protocol": _str(item, "ProtocolName"),
                "retrieve_ae": _str(item, "RetrieveAETitle"),
                "images": images,
                "non_image": non_image,
            }
        )
    return series, total


def _consumables(ds: Dataset) -> list[dict]:
    """Film Consumption (0040,0321) and Billing Supplies and Devices (0040,0324), PS3.3 C.4.17."""
    items: list[dict] = []
    for film in ds.get("FilmConsumptionSequence") or []:
        items.append(
            {
                "kind": "film",
                "count": int(film.get("NumberOfFilms") or 0),
                "medium": _str(film, "MediumType"),
                "size": _str(film, "FilmSizeID"),
            }
        )
    for supply in ds.get("BillingSuppliesAndDevicesSequence") or []:
        code = (supply.get("BillingItemSequence") or [Dataset()])[0]
        qty_item = (supply.get("QuantitySequence") or [Dataset()])[0]
        qty = qty_item.get("Quantity")
        items.append(
            {
                "kind": "supply",
                "code": _str(code, "CodeValue"),
                "scheme": _str(code, "CodingSchemeDesignator"),
                "meaning": _str(code, "CodeMeaning"),
                "quantity": float(qty) if qty not in (None, "") else 1.0,
            }
        )
    return items


def film_item_code(film_size_id: str) -> str:
    """Film Size ID (2010,0050), e.g. ``14INX17IN`` → the materials code ``FILM1417``."""
    numbers = re.findall(r"\d+", film_size_id or "")
    if len(numbers) != 2:
        return ""
    return "FILM" + "".join(f"{int(n):02d}" for n in sorted(numbers, key=int))


def _record_materials(*, mpps: PerformedProcedureStep, items: list[dict], procedures) -> None:
    """Hand film and billing items to the department's materials ledger when it exists."""
    try:
        from department.services import material_record_usage
    except ImportError:
        return
    for proc in procedures:
        for item in items:
            code = item.get("code") or (
                film_item_code(item.get("size", "")) if item.get("kind") == "film" else ""
            )
            quantity = item.get("quantity", item.get("count", 0))
            if not code or not quantity:
                continue
            try:
                material_record_usage(
                    procedure=proc,
                    item_code=code[:16],
                    quantity=quantity,
                    actor=None,
                    source=f"mpps:{mpps.source_ae}",
                )
            except ApplicationError as exc:
                logger.warning("MPPS %s: material %s not recorded: %s", mpps.pk, code, exc.message)
        break  # group case: bill the consumables once, on the first procedure


# ---------------------------------------------------------------------------------------
# Linking


@dataclass
class LinkResult:
    procedures: list[RequestedProcedure] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)


def _link(ssa: list[Dataset]) -> LinkResult:
    """Scheduled Step Attributes Sequence → requested procedures (PS3.4 F.7.2.1.1, IHE RAD-6).

    Study Instance UID first; else Accession Number + Requested Procedure ID + SPS ID.
    Several items name several procedures (group case).
    """
    result = LinkResult()
    seen: set[int] = set()
    for item in ssa:
        study_uid = _str(item, "StudyInstanceUID")
        accession = _str(item, "AccessionNumber")
        rp_id = _str(item, "RequestedProcedureID")
        sps_id = _str(item, "ScheduledProcedureStepID")
        proc = None
        if study_uid:
            proc = (
                RequestedProcedure.objects.select_related("order")
                .filter(study_instance_uid=study_uid)
                .first()
            )
        if proc is None and (sps_id or (accession and rp_id)):
            qs = ScheduledProcedureStep.objects.select_related("requested_procedure__order")
            if sps_id:
                qs = qs.filter(sps_id=sps_id)
            if accession:
                qs = qs.filter(requested_procedure__order__accession_number=accession)
            if rp_id:
                qs = qs.filter(requested_procedure__requested_procedure_id=rp_id)
            step = qs.first()
            proc = step.requested_procedure if step else None
        if proc is None:
            result.unmatched.append(
                {"study_uid": study_uid, "accession": accession, "rp_id": rp_id, "sps_id": sps_id}
            )
        elif proc.pk not in seen:
            seen.add(proc.pk)
            result.procedures.append(proc)
    return result


def _check_patient(
    mpps: PerformedProcedureStep, procedures: list[RequestedProcedure], calling_ae: str
) -> None:
    """Wrong-patient safety net: the modality's Patient ID must be the scheduled patient's.

    The link stands (the Study Instance UID or the identifiers chose it), but a mismatch is
    put in front of a person. The message names no patient (it is shown to technologists and
    may be exported); the MPPS row keeps what was sent.
    """
    if not procedures:
        return
    patient_ids = {p.order.patient_id for p in procedures}
    if len(patient_ids) > 1:
        MPPSException.objects.create(
            mpps=mpps,
            reason=MPPSExceptionReason.GROUP,
            source_ae=calling_ae[:16],
            message=f"{len(patient_ids)} different patients in one performed procedure step.",
        )
    sent = mpps.dicom_patient_id
    if sent:
        from registration.models import Patient

        known = set(Patient.objects.filter(pk__in=patient_ids).values_list("patient_id", flat=True))
        if sent not in known:
            MPPSException.objects.create(
                mpps=mpps,
                reason=MPPSExceptionReason.PATIENT,
                source_ae=calling_ae[:16],
                message="The Patient ID sent by the modality is not the scheduled patient's.",
            )


# ---------------------------------------------------------------------------------------
# N-CREATE / N-SET / N-GET


@transaction.atomic
def mpps_create(
    *, attributes: Dataset, calling_ae: str, sop_instance_uid: str | None = None
) -> PerformedProcedureStep:
    """Record a new MPPS (must be IN PROGRESS) and start the procedures it names."""
    if sop_instance_uid:
        try:
            validate_ui(sop_instance_uid)
        except ValidationError as exc:
            raise MPPSInvalidAttribute("Invalid Affected SOP Instance UID.") from exc
    _require(attributes, CREATE_TYPE1)
    status = _str(attributes, "PerformedProcedureStepStatus")
    if status != MPPSStatus.IN_PROGRESS:
        raise MPPSInvalidAttribute(
            "Performed Procedure Step Status must be IN PROGRESS at N-CREATE.",
            tags=[_tag("PerformedProcedureStepStatus")],
        )
    ssa = list(attributes.ScheduledStepAttributesSequence)
    if not ssa:
        raise MPPSMissingValue(
            "Scheduled Step Attributes Sequence has no item.",
            tags=[_tag("ScheduledStepAttributesSequence")],
        )
    for item in ssa:
        _require(item, SSA_TYPE1, where=" in Scheduled Step Attributes Sequence")
    uid = sop_instance_uid or new_uid()
    if PerformedProcedureStep.objects.filter(sop_instance_uid=uid).exists():
        raise MPPSDuplicate("An MPPS with this SOP Instance UID exists.")
    started = _dicom_datetime(
        attributes, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"
    )
    link = _link(ssa)
    first = ssa[0]
    patient_id = link.procedures[0].order.patient_id if link.procedures else None
    mpps = PerformedProcedureStep(
        sop_instance_uid=uid,
        status=MPPSStatus.IN_PROGRESS,
        source_ae=calling_ae[:16],
        performed_station_ae=_str(attributes, "PerformedStationAETitle")[:16],
        performed_station_name=_str(attributes, "PerformedStationName")[:16],
        performed_location=_str(attributes, "PerformedLocation")[:16],
        pps_id=_str(attributes, "PerformedProcedureStepID")[:16],
        description=_str(attributes, "PerformedProcedureStepDescription")[:64],
        modality=_str(attributes, "Modality")[:16],
        started_at=started,
        patient_id=patient_id,
        dicom_patient_id=_str(attributes, "PatientID")[:64],
        study_instance_uid=_str(first, "StudyInstanceUID")[:64],
        accession_number=_str(first, "AccessionNumber")[:16],
        unscheduled=not link.procedures,
        attributes=_to_json(attributes),
    )
    from scheduling.models import Station

    mpps.station = Station.objects.filter(ae_title=mpps.performed_station_ae or calling_ae).first()
    try:
        with transaction.atomic():
            mpps.save(force_insert=True)
    except IntegrityError as exc:  # a concurrent N-CREATE with the same UID won the race
        raise MPPSDuplicate("An MPPS with this SOP Instance UID exists.") from exc
    mpps.procedures.set(link.procedures)
    source = f"mpps:{calling_ae}"[:32]
    problems = []
    # Lock the procedures (in pk order, like every writer here) so that two modalities
    # starting the same exam at once do not both try to start it.
    locked = dict(
        RequestedProcedure.objects.select_for_update()
        .filter(pk__in=[p.pk for p in link.procedures])
        .order_by("pk")
        .values_list("pk", "status")
    )
    for proc in link.procedures:
        if locked.get(proc.pk) == ProcedureStatus.IN_PROGRESS:
            continue  # IHE "append case": a further step of an exam already under way
        try:
            scheduling.procedure_start(
                procedure=proc, source=source, at=_event_time(started), detail={"mpps": uid}
            )
        except InvalidTransition as exc:
            problems.append(f"{proc.requested_procedure_id}: {exc.message}")
    if not link.procedures:
        MPPSException.objects.create(
            mpps=mpps,
            reason=MPPSExceptionReason.UNSCHEDULED,
            source_ae=calling_ae[:16],
            message="No scheduled procedure matches the Scheduled Step Attributes Sequence.",
        )
    elif link.unmatched:
        MPPSException.objects.create(
            mpps=mpps,
            reason=MPPSExceptionReason.PARTIAL,
            source_ae=calling_ae[:16],
            message=f"{len(link.unmatched)} referenced step(s) not found.",
        )
    if problems:
        MPPSException.objects.create(
            mpps=mpps,
            reason=MPPSExceptionReason.STATE,
            source_ae=calling_ae[:16],
            message="; ".join(problems)[:255],
        )
    _check_patient(mpps, link.procedures, calling_ae)
    MPPSEvent.objects.create(
        mpps=mpps,
        action="create",
        status=mpps.status,
        source_ae=calling_ae[:16],
        detail={"procedures": [p.pk for p in link.procedures], "unmatched": len(link.unmatched)},
    )
    audit_record(
        action="mpps.create",
        object_type="mpps",
        object_id=uid,
        patient_id=patient_id,
        source_ae=calling_ae,
        detail={
            "procedures": [p.pk for p in link.procedures],
            "unscheduled": mpps.unscheduled,
            **({"problems": problems} if problems else {}),
        },
    )
    logger.info(
        "MPPS N-CREATE %s from %s: %d procedure(s), unscheduled=%s",
        uid,
        calling_ae,
        len(link.procedures),
        mpps.unscheduled,
    )
    return mpps


# ---------------------------------------------------------------------------------------
# The MPPS lifecycle (PS3.4 F.7.2.2: N-SET while IN PROGRESS; COMPLETED and DISCONTINUED are
# final): one declared table, one guarded mutator (ris/lifecycle.py, as scheduling/services.py).

MPPS_TRANSITIONS: dict[str, Transition] = {
    "update": Transition(sources=(MPPSStatus.IN_PROGRESS,), target=MPPSStatus.IN_PROGRESS),
    "complete": Transition(sources=(MPPSStatus.IN_PROGRESS,), target=MPPSStatus.COMPLETED),
    "discontinue": Transition(sources=(MPPSStatus.IN_PROGRESS,), target=MPPSStatus.DISCONTINUED),
}
MPPS_LIFECYCLE = Lifecycle(model=PerformedProcedureStep, transitions=MPPS_TRANSITIONS, name="MPPS")
MPPS_ACTION_FOR_STATUS = {rule.target: action for action, rule in MPPS_TRANSITIONS.items()}


def _mpps_transition(
    *,
    mpps: PerformedProcedureStep,
    action: str,
    updates: dict,
    calling_ae: str,
    event_detail: dict | None = None,
    then=None,
) -> str:
    """The one place an MPPS status changes: guarded UPDATE, side work, event row, audit.

    ``then()`` runs after the UPDATE (the procedures follow the step) and returns extra audit
    detail. Returns the source status. Call inside the N-SET's transaction.
    """
    try:
        old_status = MPPS_LIFECYCLE.advance(pk=mpps.pk, action=action, updates=updates)
    except (InvalidTransition, NotFound) as exc:  # pragma: no cover - guarded by select_for_update
        raise MPPSProcessingFailure("The MPPS changed concurrently.") from exc
    new_status = MPPS_TRANSITIONS[action].target
    extra = then() if then is not None else {}
    MPPSEvent.objects.create(
        mpps=mpps,
        action="set",
        status=new_status,
        source_ae=calling_ae[:16],
        detail={"from": old_status, **(event_detail or {})},
    )
    audit_record(
        action="mpps.set",
        object_type="mpps",
        object_id=mpps.sop_instance_uid,
        patient_id=mpps.patient_id,
        source_ae=calling_ae,
        detail={"from": old_status, "to": new_status, **extra},
    )
    return old_status


@transaction.atomic
def mpps_update(*, sop_instance_uid: str, modifications: Dataset, calling_ae: str) -> PerformedProcedureStep:
    """Apply an N-SET: more attributes while IN PROGRESS, or the final COMPLETED/DISCONTINUED."""
    mpps = (
        PerformedProcedureStep.objects.select_for_update().filter(sop_instance_uid=sop_instance_uid).first()
    )
    if mpps is None:
        raise MPPSNotFound("No such MPPS instance.")
    if mpps.status in FINAL_MPPS_STATUSES:
        # PS3.4 F.7.2.2.4.2: "Performed Procedure Step Object may no longer be updated".
        raise MPPSNoLongerUpdatable(
            f"The MPPS is already {mpps.status}; it may no longer be updated.",
        )
    stored = Dataset.from_json(mpps.attributes) if mpps.attributes else Dataset()
    changed_create_only = []
    for keyword in CREATE_ONLY:
        if keyword in modifications and (
            keyword not in stored or stored[keyword].value != modifications[keyword].value
        ):
            changed_create_only.append(keyword)
    if changed_create_only:
        raise MPPSInvalidAttribute(
            f"Attribute(s) {', '.join(changed_create_only)} may only be set at N-CREATE.",
            tags=[_tag(k) for k in changed_create_only],
        )
    new_status = _str(modifications, "PerformedProcedureStepStatus") or mpps.status
    if new_status not in MPPSStatus.values:
        raise MPPSValueOutOfRange(
            f"Unknown Performed Procedure Step Status {new_status!r}.",
            tags=[_tag("PerformedProcedureStepStatus")],
        )
    for elem in modifications:
        if elem.keyword not in _NOT_STORED:
            stored[elem.tag] = elem
    final = new_status in FINAL_MPPS_STATUSES
    if final:
        # F.7.2.2.2: end date and time are required when the step is completed or discontinued.
        _require(stored, ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"))
    ended = _dicom_datetime(stored, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime")
    series, image_count = _series(stored)
    consumables = _consumables(stored)
    if new_status == MPPSStatus.DISCONTINUED:
        reason = (stored.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or [Dataset()])[0]
        mpps.discontinuation_code = _str(reason, "CodeValue")[:16]
        mpps.discontinuation_scheme = _str(reason, "CodingSchemeDesignator")[:16]
        mpps.discontinuation_meaning = _str(reason, "CodeMeaning")[:64]
    old_status = mpps.status
    mpps.status = new_status
    mpps.ended_at = ended
    mpps.performed_series = series
    mpps.image_count = image_count
    mpps.consumables = consumables
    mpps.description = _str(stored, "PerformedProcedureStepDescription")[:64] or mpps.description
    mpps.attributes = _to_json(stored)

    def finish() -> dict:
        procedures = list(mpps.procedures.select_related("order").order_by("pk"))
        source = f"mpps:{calling_ae}"[:32]
        problems = []
        if final:
            for proc in procedures:
                problem = _finish_procedure(proc, mpps=mpps, source=source, at=_event_time(ended))
                if problem:
                    problems.append(problem)
            if consumables and procedures:
                _record_materials(mpps=mpps, items=consumables, procedures=procedures)
        if problems:
            MPPSException.objects.create(
                mpps=mpps,
                reason=MPPSExceptionReason.STATE,
                source_ae=calling_ae[:16],
                message="; ".join(problems)[:255],
            )
        return {"problems": problems} if problems else {}

    _mpps_transition(
        mpps=mpps,
        action=MPPS_ACTION_FOR_STATUS[new_status],
        updates={
            "ended_at": mpps.ended_at,
            "performed_series": mpps.performed_series,
            "image_count": mpps.image_count,
            "consumables": mpps.consumables,
            "description": mpps.description,
            "discontinuation_code": mpps.discontinuation_code,
            "discontinuation_scheme": mpps.discontinuation_scheme,
            "discontinuation_meaning": mpps.discontinuation_meaning,
            "attributes": mpps.attributes,
            "updated_at": timezone.now(),
        },
        calling_ae=calling_ae,
        event_detail={"images": image_count, "series": len(series)},
        then=finish,
    )
    logger.info("MPPS N-SET %s from %s: %s -> %s", mpps.sop_instance_uid, calling_ae, old_status, new_status)
    return mpps


def _finish_procedure(proc: RequestedProcedure, *, mpps: PerformedProcedureStep, source: str, at) -> str:
    """Move a procedure to its final state once its last open MPPS is final.

    A procedure may have several MPPS (IHE append case, or a discontinued step redone): it is
    completed when its last open step ends and any of its steps completed, discontinued when
    all of them were discontinued. Returns a problem description, or "".
    """
    # The procedure row lock serialises the last two steps of one exam ending at once: the
    # second waits, then sees the first committed (READ COMMITTED re-reads per statement).
    current = (
        RequestedProcedure.objects.select_for_update()
        .filter(pk=proc.pk)
        .values_list("status", flat=True)
        .first()
    )
    steps = list(PerformedProcedureStep.objects.filter(procedures=proc).values_list("pk", "status"))
    if any(status == MPPSStatus.IN_PROGRESS for pk, status in steps if pk != mpps.pk):
        return ""  # another step of this exam is still under way
    statuses = {status for _pk, status in steps} | {mpps.status}
    target = ProcedureStatus.COMPLETED if MPPSStatus.COMPLETED in statuses else ProcedureStatus.DISCONTINUED
    if current == target:
        return ""  # already there (e.g. completed at the console)
    try:
        if target == ProcedureStatus.COMPLETED:
            scheduling.procedure_complete(
                procedure=proc, source=source, at=at, detail={"mpps": mpps.sop_instance_uid}
            )
        else:
            scheduling.procedure_discontinue(
                procedure=proc,
                source=source,
                at=at,
                reason=mpps.discontinuation_meaning or "Discontinued at the modality",
                detail={"mpps": mpps.sop_instance_uid, "code": mpps.discontinuation_code},
            )
    except InvalidTransition as exc:
        return f"{proc.requested_procedure_id}: {exc.message}"
    return ""


def mpps_get(*, sop_instance_uid: str, calling_ae: str, tags: list[int] | None = None) -> Dataset:
    """N-GET (MPPS Retrieve SOP Class): the stored attributes, optionally only ``tags``."""
    mpps = PerformedProcedureStep.objects.filter(sop_instance_uid=sop_instance_uid).first()
    if mpps is None:
        raise MPPSNotFound("No such MPPS instance.")
    stored = Dataset.from_json(mpps.attributes) if mpps.attributes else Dataset()
    if tags:
        out = Dataset()
        for tag in tags:
            if tag in stored:
                out[tag] = stored[tag]
        stored = out
    # Values are kept as Unicode (DICOM JSON); return them in UTF-8 whatever the modality used.
    stored.SpecificCharacterSet = "ISO_IR 192"
    audit_record(
        action="mpps.get",
        object_type="mpps",
        object_id=sop_instance_uid,
        patient_id=mpps.patient_id,
        source_ae=calling_ae,
    )
    return stored


# ---------------------------------------------------------------------------------------
# Console: manual steps for modalities without MPPS, and exam notes


def console_start(*, procedure, actor, request=None) -> RequestedProcedure:
    return scheduling.procedure_start(procedure=procedure, actor=actor, source="console", request=request)


def console_complete(*, procedure, actor, request=None) -> RequestedProcedure:
    return scheduling.procedure_complete(procedure=procedure, actor=actor, source="console", request=request)


def console_discontinue(*, procedure, reason: str, actor, request=None) -> RequestedProcedure:
    return scheduling.procedure_discontinue(
        procedure=procedure, reason=reason, actor=actor, source="console", request=request
    )


def console_arrive(*, procedure, actor, request=None) -> RequestedProcedure:
    return scheduling.procedure_mark_arrived(
        procedure=procedure, actor=actor, source="console", request=request
    )


@transaction.atomic
def exam_note_add(
    *,
    procedure: RequestedProcedure,
    actor,
    request=None,
    contrast_agent: str = "",
    contrast_dose_ml: Decimal | None = None,
    films_printed: int = 0,
    film_size: str = "",
    text: str = "",
    contrast_item_code: str = "",
    film_item_code: str = "",
) -> ExamNote:
    """Record contrast, films (出片) and a free-text note; hand materials to the department ledger."""
    if procedure.status in (ProcedureStatus.CANCELLED,):
        raise ApplicationError(_("The procedure was cancelled."))
    if not (contrast_agent or contrast_dose_ml or films_printed or text.strip()):
        raise ApplicationError(_("The note is empty."), fields={"text": [_("Enter something to record.")]})
    if contrast_dose_ml is not None and (contrast_dose_ml < 0 or contrast_dose_ml > Decimal("1000")):
        raise ApplicationError(_("Contrast dose out of range."), fields={"contrast_dose_ml": ["0-1000 ml"]})
    if contrast_dose_ml and not contrast_agent:
        raise ApplicationError(
            _("Name the contrast agent."), fields={"contrast_agent": [_("Required with a dose.")]}
        )
    if films_printed < 0 or films_printed > 100:
        raise ApplicationError(_("Films out of range."), fields={"films_printed": ["0-100"]})
    note = ExamNote.objects.create(
        procedure=procedure,
        contrast_agent=contrast_agent.strip()[:64],
        contrast_dose_ml=contrast_dose_ml,
        films_printed=films_printed,
        film_size=film_size.strip()[:16],
        text=text.strip(),
        author=actor if getattr(actor, "is_authenticated", False) else None,
    )
    # Materials leave stock only when the console named the ledger item used.
    materials: list[tuple[str, Decimal | int]] = []
    if contrast_dose_ml and contrast_item_code:
        materials.append((contrast_item_code, contrast_dose_ml))
    if films_printed and film_item_code:
        materials.append((film_item_code, films_printed))
    if materials:
        try:
            from department.services import material_record_usage
        except ImportError:
            material_record_usage = None  # type: ignore[assignment]  # department not installed
        if material_record_usage is not None:
            for code, quantity in materials:
                material_record_usage(
                    procedure=procedure, item_code=code, quantity=quantity, actor=actor, source="console"
                )
    audit_record(
        action="exam.note",
        actor=actor,
        request=request,
        object_type="procedure",
        object_id=procedure.pk,
        patient_id=procedure.order.patient_id,
        detail={"note": note.pk, "films": films_printed, "contrast": bool(contrast_agent)},
    )
    return note


@transaction.atomic
def mpps_exception_resolve(
    *, exception: MPPSException, procedure: RequestedProcedure | None, actor, request=None
) -> list[str]:
    """Close an MPPS exception; with ``procedure``, link the MPPS to it and catch the procedure up.

    The procedure is moved to where the MPPS says the exam is (started, then completed or
    discontinued) through the scheduling services with ``source="console"``. Returns the
    transitions that could not be applied (the procedure had moved on already).
    """
    updated = MPPSException.objects.filter(pk=exception.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(),
        resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
        resolution=f"linked to {procedure.requested_procedure_id}" if procedure else "dismissed",
    )
    if not updated:
        raise InvalidTransition(_("This exception is already resolved."))
    mpps = exception.mpps
    problems: list[str] = []
    if procedure is not None:
        mpps.procedures.add(procedure)
        PerformedProcedureStep.objects.filter(pk=mpps.pk).update(
            patient_id=procedure.order.patient_id, unscheduled=False
        )
        steps: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            ("start", scheduling.procedure_start, {})
        ]
        if mpps.status == MPPSStatus.COMPLETED:
            steps.append(("complete", scheduling.procedure_complete, {}))
        elif mpps.status == MPPSStatus.DISCONTINUED:
            reason = mpps.discontinuation_meaning or "Discontinued at the modality"
            steps.append(("discontinue", scheduling.procedure_discontinue, {"reason": reason}))
        for name, transition, extra in steps:
            try:
                transition(
                    procedure=procedure,
                    actor=actor,
                    request=request,
                    source="console",
                    detail={"mpps": mpps.sop_instance_uid, "reconciled": True},
                    **extra,
                )
            except InvalidTransition as exc:
                problems.append(f"{name}: {exc.message}")
    audit_record(
        action="mpps.exception_resolve",
        actor=actor,
        request=request,
        object_type="mpps",
        object_id=mpps.sop_instance_uid,
        patient_id=procedure.order.patient_id if procedure else mpps.patient_id,
        detail={"procedure": procedure.pk if procedure else None, "problems": problems},
    )
    return problems


__all__ = [
    "MPPSDuplicate",
    "MPPSError",
    "MPPSInvalidAttribute",
    "MPPSMissingAttribute",
    "MPPSMissingValue",
    "MPPSNoLongerUpdatable",
    "MPPSNotFound",
    "MPPSProcessingFailure",
    "MPPSValueOutOfRange",
    "console_arrive",
    "console_complete",
    "console_discontinue",
    "console_start",
    "exam_note_add",
    "mpps_create",
    "mpps_exception_resolve",
    "mpps_get",
    "mpps_update",
]
