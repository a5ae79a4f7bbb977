"""Writes for scheduling: ordering, booking, and the procedure lifecycle.

The lifecycle (DESIGN.md §3) is a declared table. Every transition goes through one guarded
mutator: a conditional UPDATE per allowed source status (so the winner under concurrency is
decided by the database, and the event row records the true source status), the SPS mirror,
a ProcedureEvent, an AuditEvent, and side effects after commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from ris.errors import ApplicationError, Conflict, InvalidTransition, NotFound
from ris.identifiers import new_accession_number, new_requested_procedure_id, new_sps_id, new_uid
from ris.lifecycle import Lifecycle, Transition

from . import signals
from .models import (
    FINAL_SPS_STATUSES,
    Order,
    Priority,
    ProcedureEvent,
    ProcedureStatus,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    SPSStatus,
    Station,
    StationDowntime,
)

logger = logging.getLogger(__name__)

S = ProcedureStatus


def _rule(sources, target, sps_status, timestamp_field=None, *, reason_required=False) -> Transition:
    return Transition(
        sources=sources,
        target=target,
        meta={
            "sps_status": sps_status,
            "timestamp_field": timestamp_field,
            "reason_required": reason_required,
        },
    )


# The procedure state machine: action -> allowed sources, target, SPS mirror.
# "start" is allowed from scheduled as well as arrived: a modality may send MPPS IN PROGRESS
# for a walk-in whose check-in the front desk has not yet recorded (IHE SWF case).
TRANSITIONS: dict[str, Transition] = {
    # An order placed without a slot (awaiting booking) gets its station and time here.
    "book": _rule((S.REQUESTED,), S.SCHEDULED, SPSStatus.SCHEDULED),
    "arrive": _rule((S.SCHEDULED,), S.ARRIVED, SPSStatus.ARRIVED, "arrived_at"),
    "start": _rule((S.SCHEDULED, S.ARRIVED), S.IN_PROGRESS, SPSStatus.STARTED, "started_at"),
    "complete": _rule((S.IN_PROGRESS,), S.COMPLETED, SPSStatus.COMPLETED, "ended_at"),
    "discontinue": _rule(
        (S.IN_PROGRESS,), S.DISCONTINUED, SPSStatus.DISCONTINUED, "ended_at", reason_required=True
    ),
    "cancel": _rule(
        (S.REQUESTED, S.SCHEDULED, S.ARRIVED), S.CANCELLED, SPSStatus.CANCELED, reason_required=True
    ),
    "reschedule": _rule((S.SCHEDULED, S.ARRIVED), S.SCHEDULED, SPSStatus.SCHEDULED, reason_required=True),
}
PROCEDURE_LIFECYCLE = Lifecycle(model=RequestedProcedure, transitions=TRANSITIONS, name="procedure")

ACTIVE_STATUSES = (S.SCHEDULED, S.ARRIVED, S.IN_PROGRESS)
# Open for changes from the placer (HL7 XO, FHIR update): not yet performed.
OPEN_STATUSES = (S.REQUESTED, S.SCHEDULED, S.ARRIVED)
BOOKING_SPS_STATUSES = (SPSStatus.SCHEDULED, SPSStatus.ARRIVED, SPSStatus.STARTED)


def allowed_actions(status: str) -> list[str]:
    return PROCEDURE_LIFECYCLE.allowed_actions(status)


def _send_transitioned(procedure_id: int, action: str, from_status: str, to_status: str) -> None:
    signals.procedure_transitioned.send(
        sender=RequestedProcedure,
        procedure_id=procedure_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
    )


def _transition(
    *,
    procedure: RequestedProcedure | int,
    action: str,
    actor=None,
    source: str = "ui",
    reason: str = "",
    request=None,
    at: datetime | None = None,
    detail: dict | None = None,
    extra_updates: dict | None = None,
) -> RequestedProcedure:
    rule = PROCEDURE_LIFECYCLE.rule(action)
    reason = (reason or "").strip()
    if rule.meta["reason_required"] and not reason:
        raise ApplicationError("A reason is required.", fields={"reason": ["This field is required."]})
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    now = at or timezone.now()
    updates: dict[str, Any] = {"updated_at": timezone.now()}
    if rule.meta["timestamp_field"]:
        updates[rule.meta["timestamp_field"]] = now
    if reason:
        updates["status_reason"] = reason[:255]
    updates.update(extra_updates or {})
    with transaction.atomic():
        try:
            from_status = PROCEDURE_LIFECYCLE.advance(pk=pk, action=action, updates=updates)
        except NotFound:
            raise ApplicationError("No such procedure.") from None
        steps = ScheduledProcedureStep.objects.filter(requested_procedure_id=pk)
        if action != "reschedule":
            steps.exclude(status__in=FINAL_SPS_STATUSES).update(status=rule.meta["sps_status"])
        proc = RequestedProcedure.objects.select_related("order").get(pk=pk)
        ProcedureEvent.objects.create(
            requested_procedure_id=pk,
            action=action,
            from_status=from_status,
            to_status=rule.target,
            at=now,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            source=source[:32],
            reason=reason[:255],
            detail=detail or {},
        )
        audit_record(
            action=f"procedure.{action}",
            actor=actor,
            request=request,
            object_type="procedure",
            object_id=pk,
            patient_id=proc.order.patient_id,
            source_ae=source.split(":", 1)[1] if source.startswith(("mpps:", "dicom:")) else "",
            detail={"from": from_status, "to": rule.target, **({"reason": reason} if reason else {})},
        )
        # Same transaction: outbox rows (HL7 order status) commit or roll back with the change.
        signals.procedure_recorded.send(
            sender=RequestedProcedure,
            procedure_id=pk,
            action=action,
            from_status=from_status,
            to_status=rule.target,
            at=now,
            source=source,
        )
        transaction.on_commit(partial(_send_transitioned, pk, action, from_status, rule.target))
    logger.info("procedure %s %s: %s -> %s (%s)", pk, action, from_status, rule.target, source)
    return proc


def procedure_mark_arrived(*, procedure, actor=None, source="ui", request=None, at=None):
    return _transition(
        procedure=procedure, action="arrive", actor=actor, source=source, request=request, at=at
    )


def procedure_start(*, procedure, actor=None, source="ui", request=None, at=None, detail=None):
    return _transition(
        procedure=procedure, action="start", actor=actor, source=source, request=request, at=at, detail=detail
    )


def procedure_complete(*, procedure, actor=None, source="ui", request=None, at=None, detail=None):
    return _transition(
        procedure=procedure,
        action="complete",
        actor=actor,
        source=source,
        request=request,
        at=at,
        detail=detail,
    )


def procedure_discontinue(*, procedure, reason, actor=None, source="ui", request=None, at=None, detail=None):
    return _transition(
        procedure=procedure,
        action="discontinue",
        actor=actor,
        source=source,
        reason=reason,
        request=request,
        at=at,
        detail=detail,
    )


def procedure_cancel(*, procedure, reason, actor=None, source="ui", request=None, at=None):
    return _transition(
        procedure=procedure,
        action="cancel",
        actor=actor,
        source=source,
        reason=reason,
        request=request,
        at=at,
    )


def procedure_reschedule(
    *,
    procedure,
    start: datetime,
    reason: str,
    station: Station | None = None,
    actor=None,
    source="ui",
    request=None,
):
    """Move the procedure's open step to a new slot (and optionally another station)."""
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    with transaction.atomic():
        step = (
            ScheduledProcedureStep.objects.select_related("station", "requested_procedure__procedure_type")
            .filter(requested_procedure_id=pk)
            .exclude(status__in=FINAL_SPS_STATUSES)
            .order_by("-start")
            .first()
        )
        if step is None:
            raise InvalidTransition("The procedure has no open scheduled step.")
        if step.start is None or step.end is None or step.station is None:
            raise InvalidTransition("The procedure is awaiting booking; book it instead.")
        target_station = station or step.station
        duration = step.end - step.start
        _lock_and_check_slot(
            station=target_station, start=start, end=start + duration, exclude_step_id=step.pk
        )
        old = {"station": step.station.ae_title, "start": step.start.isoformat()}
        proc = _transition(
            procedure=pk,
            action="reschedule",
            actor=actor,
            source=source,
            reason=reason,
            request=request,
            detail={"old": old, "new": {"station": target_station.ae_title, "start": start.isoformat()}},
            extra_updates={"arrived_at": None},
        )
        ScheduledProcedureStep.objects.filter(pk=step.pk).update(
            station=target_station,
            modality=target_station.modality,
            start=start,
            end=start + duration,
            status=SPSStatus.SCHEDULED,
        )
    return proc


def procedure_book(
    *,
    procedure,
    station: Station,
    start: datetime,
    actor=None,
    source="ui",
    request=None,
):
    """Book an order awaiting booking: give its step a station and a slot (calendar rules as
    for a new order: modality match, working hours, downtime, no overlap)."""
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    with transaction.atomic():
        proc = RequestedProcedure.objects.select_related("procedure_type").filter(pk=pk).first()
        if proc is None:
            raise ApplicationError("No such procedure.")
        if proc.status != S.REQUESTED:
            raise InvalidTransition(f"Cannot book a procedure that is {proc.status}.")
        ptype = proc.procedure_type
        if station.modality != ptype.modality:
            raise ApplicationError(
                "The station's modality does not match the procedure.",
                fields={
                    "station": [
                        f"{station.ae_title} is {station.modality}, the procedure needs {ptype.modality}."
                    ]
                },
            )
        end = start + timedelta(minutes=ptype.duration_minutes)
        _lock_and_check_slot(station=station, start=start, end=end)
        # The guarded UPDATE decides a concurrent double booking; the step follows.
        proc = _transition(
            procedure=pk,
            action="book",
            actor=actor,
            source=source,
            request=request,
            detail={"station": station.ae_title, "start": start.isoformat()},
        )
        ScheduledProcedureStep.objects.filter(requested_procedure_id=pk, start__isnull=True).exclude(
            status__in=FINAL_SPS_STATUSES
        ).update(
            station=station,
            modality=station.modality,
            start=start,
            end=end,
            status=SPSStatus.SCHEDULED,
            exclusive_slot=True,
        )
    return proc


# ---------------------------------------------------------------------------------------
# Booking


def _lock_and_check_slot(*, station: Station, start: datetime, end: datetime, exclude_step_id=None) -> None:
    """Serialise bookings per station (row lock) and refuse overlaps and downtime."""
    if timezone.is_naive(start):
        raise ApplicationError("Start time must be timezone-aware.")
    locked = Station.objects.select_for_update().filter(pk=station.pk, active=True).first()
    if locked is None:
        raise ApplicationError("The station is not active.", fields={"station": ["Inactive station."]})
    if not locked.fits(start, end):
        raise ApplicationError(
            "The slot is outside the station's working hours.",
            fields={"start": ["Outside working hours."]},
        )
    if StationDowntime.objects.filter(station=station, start__lt=end, end__gt=start).exists():
        raise Conflict("The station is down at that time.", fields={"start": ["Station downtime."]})
    clash = ScheduledProcedureStep.objects.filter(
        station=station, status__in=BOOKING_SPS_STATUSES, start__lt=end, end__gt=start
    )
    if exclude_step_id:
        clash = clash.exclude(pk=exclude_step_id)
    if clash.exists():
        raise Conflict("The slot is already booked.", fields={"start": ["Slot already booked."]})


_IMPORT_PROCEDURE_FIELDS = {"description"}
_IMPORT_STEP_FIELDS = {"modality", "description", "pre_medication", "contrast_agent"}


@transaction.atomic
def order_create(
    *,
    patient,
    procedure_type: ProcedureType,
    station: Station | None,
    start: datetime | None,
    actor=None,
    request=None,
    priority: str = Priority.ROUTINE,
    referring_physician: str = "",
    requesting_physician: str = "",
    requesting_service: str = "",
    reason: str = "",
    clinical_info: str = "",
    placer_order_number: str = "",
    filler_order_number: str = "",
    admission_id: str = "",
    performing_physician: str = "",
    accession_number: str | None = None,
    requested_procedure_id: str | None = None,
    sps_id: str | None = None,
    study_instance_uid: str | None = None,
    source: str = "ui",
    check_calendar: bool = True,
    procedure_fields: dict | None = None,
    step_fields: dict | None = None,
    ordered_at: datetime | None = None,
) -> Order:
    """Order one procedure and book it on the station's calendar.

    ``station=None, start=None`` places the order **awaiting booking**: every identifier is
    assigned, the procedure is ``requested`` and its step has no station/time until
    ``procedure_book`` (it is never on a worklist before that).

    Identifiers are assigned here (Accession Number, RP ID, SPS ID, Study Instance UID)
    unless given (imports from file worklists keep theirs). ``check_calendar=False`` (imports
    of an existing schedule) skips the working-hours/overlap check and the station-modality
    match; ``procedure_fields`` (description) and ``step_fields`` (modality, description,
    pre_medication, contrast_agent) carry the imported values.
    """
    if patient.merged_into_id:
        raise ApplicationError("This patient was merged; order on the surviving record.")
    if not procedure_type.active:
        raise ApplicationError(
            "This procedure is no longer offered.", fields={"procedure_type": ["Inactive."]}
        )
    if (station is None) != (start is None):
        raise ApplicationError(
            "Give both a station and a start time, or neither (the order then awaits booking).",
            fields={"start" if start is None else "station": ["This field is required."]},
        )
    booked = station is not None and start is not None
    if station is not None and check_calendar and station.modality != procedure_type.modality:
        raise ApplicationError(
            "The station's modality does not match the procedure.",
            fields={
                "station": [
                    f"{station.ae_title} is {station.modality}, the procedure needs {procedure_type.modality}."
                ]
            },
        )
    if priority not in Priority.values:
        raise ApplicationError("Unknown priority.", fields={"priority": ["Invalid choice."]})
    end = start + timedelta(minutes=procedure_type.duration_minutes) if start is not None else None
    if station is not None and start is not None and end is not None and check_calendar:
        _lock_and_check_slot(station=station, start=start, end=end)

    order = Order(
        patient=patient,
        accession_number=accession_number or new_accession_number(),
        priority=priority,
        referring_physician=referring_physician,
        requesting_physician=requesting_physician,
        requesting_service=requesting_service,
        reason=reason,
        clinical_info=clinical_info,
        placer_order_number=placer_order_number,
        filler_order_number=filler_order_number,
        admission_id=admission_id,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    _full_clean(order, exclude=["patient", "created_by"])
    if Order.objects.filter(accession_number=order.accession_number).exists():
        raise Conflict("Accession Number already in use.", fields={"accession_number": ["Duplicate."]})
    order.save(force_insert=True)
    proc = RequestedProcedure(
        order=order,
        procedure_type=procedure_type,
        requested_procedure_id=requested_procedure_id or new_requested_procedure_id(),
        study_instance_uid=study_instance_uid or new_uid(),
        description=procedure_type.code_meaning,
        status=S.SCHEDULED if booked else S.REQUESTED,
    )
    for name, value in (procedure_fields or {}).items():
        if name not in _IMPORT_PROCEDURE_FIELDS:
            raise ApplicationError(f"Unknown procedure field {name!r}.")
        setattr(proc, name, value)
    _full_clean(proc, exclude=["order", "procedure_type"])
    if RequestedProcedure.objects.filter(
        Q(study_instance_uid=proc.study_instance_uid) | Q(requested_procedure_id=proc.requested_procedure_id)
    ).exists():
        raise Conflict("Study Instance UID or Requested Procedure ID already in use.")
    proc.save(force_insert=True)
    step = ScheduledProcedureStep(
        requested_procedure=proc,
        sps_id=sps_id or new_sps_id(),
        station=station,
        modality=station.modality if station is not None else procedure_type.modality,
        start=start,
        end=end,
        description=procedure_type.code_meaning,
        performing_physician=performing_physician,
        exclusive_slot=check_calendar or not booked,
    )
    for name, value in (step_fields or {}).items():
        if name not in _IMPORT_STEP_FIELDS:
            raise ApplicationError(f"Unknown step field {name!r}.")
        setattr(step, name, value)
    _full_clean(step, exclude=["requested_procedure", "station"])
    if ScheduledProcedureStep.objects.filter(sps_id=step.sps_id).exists():
        raise Conflict("SPS ID already in use.", fields={"sps_id": ["Duplicate."]})
    step.save(force_insert=True)
    ProcedureEvent.objects.create(
        requested_procedure=proc,
        action="order",
        from_status="",
        to_status=proc.status,
        # ordered_at: the order's real time when it is imported (HL7 ORM, demo history).
        at=ordered_at or timezone.now(),
        actor=order.created_by,
        source=source[:32],
        detail={"station": station.ae_title, "start": start.isoformat()}
        if station is not None and start is not None
        else {"awaiting_booking": True},
    )
    audit_record(
        action="order.create",
        actor=actor,
        request=request,
        object_type="order",
        object_id=order.pk,
        patient_id=patient.pk,
        detail={"accession_number": order.accession_number, "procedure": procedure_type.code_value},
    )
    signals.procedure_recorded.send(
        sender=RequestedProcedure,
        procedure_id=proc.pk,
        action="order",
        from_status="",
        to_status=proc.status,
        at=ordered_at or timezone.now(),
        source=source,
    )
    transaction.on_commit(
        partial(signals.order_created.send, sender=Order, order_id=order.pk, procedure_ids=[proc.pk])
    )
    return order


def _full_clean(obj, *, exclude) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ApplicationError("Invalid input.", fields=exc.message_dict) from exc


# ---------------------------------------------------------------------------------------
# Stations and the procedure catalog (configuration: audited, validated, one writer)

STATION_FIELDS = frozenset(
    {
        "ae_title",
        "name",
        "modality",
        "room",
        "host",
        "charset_profile",
        "worklist_scope",
        "work_start",
        "work_end",
        "slot_minutes",
        "active",
    }
)
PROCEDURE_TYPE_FIELDS = frozenset(
    {
        "code_value",
        "coding_scheme",
        "code_meaning",
        "name_zh",
        "modality",
        "body_part",
        "duration_minutes",
        "preparation",
        "active",
    }
)


def _check_fields(fields: dict, allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ApplicationError(f"Unknown {what} field(s): {', '.join(unknown)}.")


def _audit_detail(changes: dict, detail: dict | None) -> dict:
    return {**({"fields": sorted(changes)} if changes else {}), **(detail or {})}


def _save_config(obj, *, create: bool, unique: str) -> None:
    _full_clean(obj, exclude=[])
    try:
        with transaction.atomic():
            obj.save(force_insert=create)
    except IntegrityError as exc:
        raise Conflict(f"{unique} already in use.") from exc


@transaction.atomic
def station_create(*, actor=None, request=None, detail: dict | None = None, **fields) -> Station:
    """Add a station (a bookable modality and DICOM peer). ``detail`` goes to the audit record."""
    _check_fields(fields, STATION_FIELDS, "station")
    station = Station(**fields)
    if Station.objects.filter(ae_title=station.ae_title).exists():
        raise Conflict("AE title already in use.", fields={"ae_title": ["Duplicate."]})
    _save_config(station, create=True, unique="AE title")
    audit_record(
        action="station.create",
        actor=actor,
        request=request,
        object_type="station",
        object_id=station.pk,
        detail=detail,
    )
    return station


@transaction.atomic
def station_update(*, station: Station | int, actor=None, request=None, **fields) -> Station:
    """Change a station's settings; switching ``active`` off is audited as a deactivation."""
    _check_fields(fields, STATION_FIELDS, "station")
    pk = station.pk if isinstance(station, Station) else int(station)
    obj = Station.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise NotFound("No such station.")
    changes = {name: value for name, value in fields.items() if getattr(obj, name) != value}
    if not changes:
        return obj
    if "ae_title" in changes and Station.objects.filter(ae_title=changes["ae_title"]).exclude(pk=pk).exists():
        raise Conflict("AE title already in use.", fields={"ae_title": ["Duplicate."]})
    for name, value in changes.items():
        setattr(obj, name, value)
    _save_config(obj, create=False, unique="AE title")
    action = "station.deactivate" if changes.get("active") is False else "station.update"
    audit_record(
        action=action,
        actor=actor,
        request=request,
        object_type="station",
        object_id=obj.pk,
        detail=_audit_detail(changes, None),
    )
    return obj


def station_deactivate(*, station: Station | int, actor=None, request=None) -> Station:
    """Stop offering a station for booking and the worklist (its history stays)."""
    return station_update(station=station, active=False, actor=actor, request=request)


@transaction.atomic
def procedure_type_create(*, actor=None, request=None, detail: dict | None = None, **fields) -> ProcedureType:
    """Add a procedure to the catalog. ``detail`` goes to the audit record."""
    _check_fields(fields, PROCEDURE_TYPE_FIELDS, "procedure type")
    ptype = ProcedureType(**fields)
    if ProcedureType.objects.filter(coding_scheme=ptype.coding_scheme, code_value=ptype.code_value).exists():
        raise Conflict("This code is already in the catalog.", fields={"code_value": ["Duplicate."]})
    _save_config(ptype, create=True, unique="Code")
    audit_record(
        action="catalog.create",
        actor=actor,
        request=request,
        object_type="procedure_type",
        object_id=ptype.pk,
        detail=detail,
    )
    return ptype


@transaction.atomic
def procedure_type_update(
    *, procedure_type: ProcedureType | int, actor=None, request=None, **fields
) -> ProcedureType:
    _check_fields(fields, PROCEDURE_TYPE_FIELDS, "procedure type")
    pk = procedure_type.pk if isinstance(procedure_type, ProcedureType) else int(procedure_type)
    obj = ProcedureType.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise NotFound("No such procedure type.")
    changes = {name: value for name, value in fields.items() if getattr(obj, name) != value}
    if not changes:
        return obj
    for name, value in changes.items():
        setattr(obj, name, value)
    if (
        ProcedureType.objects.filter(coding_scheme=obj.coding_scheme, code_value=obj.code_value)
        .exclude(pk=pk)
        .exists()
    ):
        raise Conflict("This code is already in the catalog.", fields={"code_value": ["Duplicate."]})
    _save_config(obj, create=False, unique="Code")
    audit_record(
        action="catalog.update",
        actor=actor,
        request=request,
        object_type="procedure_type",
        object_id=obj.pk,
        detail=_audit_detail(changes, None),
    )
    return obj


class DowntimeOverlapsBookings(Conflict):
    """The downtime would fall on booked patients; the caller shows them and asks to confirm."""

    code = "downtime_overlaps_bookings"

    def __init__(self, message: str, *, overlaps: list):
        self.overlaps = overlaps
        super().__init__(
            message,
            fields={
                "confirm_overlaps": [
                    f"{timezone.localtime(s.start):%Y-%m-%d %H:%M} {s.requested_procedure.order.accession_number}"
                    for s in overlaps
                ]
            },
        )


@transaction.atomic
def station_add_downtime(
    *,
    station: Station,
    start: datetime,
    end: datetime,
    reason: str,
    actor=None,
    confirm_overlaps: bool = False,
) -> StationDowntime:
    """Record a downtime. Over live bookings it is refused unless ``confirm_overlaps`` says the
    person saw the list (``scheduling.selectors.downtime_overlapping_bookings``)."""
    if end <= start:
        raise ApplicationError("Downtime must end after it starts.", fields={"end": ["Before start."]})
    from .selectors import downtime_overlapping_bookings  # selectors import this module

    Station.objects.select_for_update().filter(pk=station.pk).first()  # serialise with bookings
    overlaps = downtime_overlapping_bookings(station=station, start=start, end=end)
    if overlaps and not confirm_overlaps:
        raise DowntimeOverlapsBookings(
            f"This downtime overlaps {len(overlaps)} booked exam(s); confirm to record it anyway.",
            overlaps=overlaps,
        )
    downtime = StationDowntime.objects.create(
        station=station,
        start=start,
        end=end,
        reason=reason,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit_record(
        action="station.downtime",
        actor=actor,
        object_type="station",
        object_id=station.pk,
        detail={
            "start": start.isoformat(),
            "end": end.isoformat(),
            "overlapping_steps": [step.pk for step in overlaps],
        },
    )
    return downtime


@transaction.atomic
def station_end_downtime(
    *, downtime: StationDowntime | int, actor=None, at: datetime | None = None
) -> StationDowntime:
    """End a downtime now (or cancel one that has not begun): its slots become bookable again."""
    pk = downtime.pk if isinstance(downtime, StationDowntime) else int(downtime)
    now = at or timezone.now()
    obj = StationDowntime.objects.select_for_update().select_related("station").filter(pk=pk).first()
    if obj is None:
        raise ApplicationError("No such downtime.")
    if obj.end <= now:
        raise Conflict("This downtime is already over.")
    if obj.start >= now:
        StationDowntime.objects.filter(pk=pk).delete()
        action, obj.end = "station.downtime_cancel", obj.start
    else:
        StationDowntime.objects.filter(pk=pk).update(end=now)
        action, obj.end = "station.downtime_end", now
    audit_record(
        action=action,
        actor=actor,
        object_type="station",
        object_id=obj.station_id,
        detail={"downtime": pk, "start": obj.start.isoformat(), "end": obj.end.isoformat()},
    )
    return obj


@transaction.atomic
def station_update_downtime(
    *,
    downtime: StationDowntime | int,
    start: datetime,
    end: datetime,
    reason: str,
    station: Station | None = None,
    actor=None,
    request=None,
) -> StationDowntime:
    """Correct a recorded downtime (the admin's change form)."""
    if end <= start:
        raise ApplicationError("Downtime must end after it starts.", fields={"end": ["Before start."]})
    pk = downtime.pk if isinstance(downtime, StationDowntime) else int(downtime)
    obj = StationDowntime.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise ApplicationError("No such downtime.")
    if station is not None:
        obj.station = station
    obj.start, obj.end, obj.reason = start, end, reason
    StationDowntime.objects.filter(pk=pk).update(station=obj.station, start=start, end=end, reason=reason)
    audit_record(
        action="station.downtime_update",
        actor=actor,
        request=request,
        object_type="station",
        object_id=obj.station_id,
        detail={"downtime": pk, "start": start.isoformat(), "end": end.isoformat()},
    )
    return obj


@transaction.atomic
def station_delete_downtime(*, downtime: StationDowntime | int, actor=None, request=None) -> None:
    """Remove a downtime recorded by mistake (its slots become bookable again)."""
    pk = downtime.pk if isinstance(downtime, StationDowntime) else int(downtime)
    obj = StationDowntime.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise ApplicationError("No such downtime.")
    StationDowntime.objects.filter(pk=pk).delete()
    audit_record(
        action="station.downtime_delete",
        actor=actor,
        request=request,
        object_type="station",
        object_id=obj.station_id,
        detail={"downtime": pk, "start": obj.start.isoformat(), "end": obj.end.isoformat()},
    )


# ---------------------------------------------------------------------------------------
# Patients merged (registration asks through its patient_merging signal)


def orders_move_patient(*, source_patient_id: int, target_patient_id: int) -> int:
    """Move every order of a merged registration to the surviving patient; returns the count.

    Called inside registration's merge transaction (see ``scheduling.apps``); the merge's
    audit record counts the orders moved.
    """
    return Order.objects.filter(patient_id=source_patient_id).update(patient_id=target_patient_id)


# ---------------------------------------------------------------------------------------
# Images (recorded by ingest; the status itself still moves only through TRANSITIONS)


def procedure_images_available(
    *, procedure, at: datetime, study_instance_uid: str = "", source: str = "ingest"
) -> bool:
    """Record once that images are available, and complete the procedure if no MPPS came.

    ``images_available_at`` is set by a conditional UPDATE (only while null), with a
    ``ProcedureEvent(action="images_available")`` and an audit event. A procedure still
    scheduled/arrived (the modality sent no MPPS) is driven to completed through
    ``procedure_start`` + ``procedure_complete``. Returns False when already recorded.
    """
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    detail = {"study_instance_uid": study_instance_uid} if study_instance_uid else {}
    with transaction.atomic():
        updated = RequestedProcedure.objects.filter(pk=pk, images_available_at__isnull=True).update(
            images_available_at=at, updated_at=timezone.now()
        )
        if not updated:
            return False
        proc = RequestedProcedure.objects.select_related("order").get(pk=pk)
        ProcedureEvent.objects.create(
            requested_procedure=proc,
            action="images_available",
            from_status=proc.status,
            to_status=proc.status,
            at=at,
            source=source[:32],
            detail=detail,
        )
        audit_record(
            action="procedure.images_available",
            object_type="procedure",
            object_id=pk,
            patient_id=proc.order.patient_id,
            detail=detail,
        )
        if proc.status in (S.SCHEDULED, S.ARRIVED):
            reason = {"reason": "images received", **detail}
            try:
                procedure_start(procedure=pk, source=source, at=at, detail=reason)
                procedure_complete(procedure=pk, source=source, at=at, detail=reason)
            except InvalidTransition:
                # An MPPS or a person moved it meanwhile: theirs is the better information.
                logger.info("procedure %s changed concurrently; not completing from %s", pk, source)
    return True


def procedure_images_withdrawn(
    *, procedure, actor=None, request=None, study_instance_uid: str = "", source: str = "ui"
) -> bool:
    """Clear ``images_available_at`` when the last linked study was unlinked (event + audit)."""
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    with transaction.atomic():
        updated = RequestedProcedure.objects.filter(pk=pk, images_available_at__isnull=False).update(
            images_available_at=None, updated_at=timezone.now()
        )
        if not updated:
            return False
        proc = RequestedProcedure.objects.select_related("order").get(pk=pk)
        ProcedureEvent.objects.create(
            requested_procedure=proc,
            action="images_unlinked",
            from_status=proc.status,
            to_status=proc.status,
            at=timezone.now(),
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            source=source[:32],
            detail={"study_instance_uid": study_instance_uid} if study_instance_uid else {},
        )
        audit_record(
            action="procedure.images_withdrawn",
            actor=actor,
            request=request,
            object_type="procedure",
            object_id=pk,
            patient_id=proc.order.patient_id,
            detail={"study_instance_uid": study_instance_uid},
        )
    return True


# ---------------------------------------------------------------------------------------
# Order details changed by the placer (HL7 ORC-1 XO, FHIR ServiceRequest update)

ORDER_UPDATABLE_FIELDS = (
    "priority",
    "referring_physician",
    "requesting_physician",
    "requesting_service",
    "reason",
    "clinical_info",
    "admission_id",
)


@transaction.atomic
def order_update(*, order: Order, actor=None, request=None, source: str = "ui", **fields) -> list[str]:
    """Change an order's clinical details (not its identifiers or procedure); returns the
    changed field names. Refused once no procedure of the order is open any more."""
    unknown = set(fields) - set(ORDER_UPDATABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown order fields: {', '.join(sorted(unknown))}")
    if "priority" in fields and fields["priority"] not in Priority.values:
        raise ApplicationError("Unknown priority.", fields={"priority": ["Invalid choice."]})
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if not RequestedProcedure.objects.filter(order=locked, status__in=OPEN_STATUSES).exists():
        raise InvalidTransition("The order has no open procedure to change.")
    changed = [name for name, value in fields.items() if getattr(locked, name) != value]
    for name in changed:
        setattr(locked, name, fields[name])
    if changed:
        _full_clean(locked, exclude=["patient", "created_by"])
        locked.save(update_fields=changed)
        for pk in locked.procedures.values_list("pk", flat=True):
            ProcedureEvent.objects.create(
                requested_procedure_id=pk,
                action="order_update",
                from_status="",
                to_status="",
                at=timezone.now(),
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                source=source[:32],
                detail={"fields": changed},
            )
    audit_record(
        action="order.update",
        actor=actor,
        request=request,
        object_type="order",
        object_id=locked.pk,
        patient_id=locked.patient_id,
        detail={"fields": changed, "source": source[:32]},
    )
    order.__dict__.update({name: getattr(locked, name) for name in ORDER_UPDATABLE_FIELDS})
    return changed
