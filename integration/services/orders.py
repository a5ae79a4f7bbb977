"""Orders from another system's placer (HIS/EMR): create, change, cancel, discontinue.

HL7-independent: the HL7 ORM/OMI handler and the FHIR ServiceRequest view both map their
input to an :class:`ExternalOrder` and call these functions. Errors are domain errors whose
``fields`` keys are the :class:`ExternalOrder` attribute names; each adapter maps those to its
own field names (OBR-4, ORC-2, ``ServiceRequest.code``…).

- The placer order number is unique per placer authority (``Order.uniq_external_placer_order``).
- Identifiers: the Accession Number, RP ID, SPS ID and Study Instance UID are assigned by the
  RIS unless the placer gives them (IHE SWF.b: IPC segment). The filler order number is the
  Accession Number.
- An order with a start time is booked directly (station given, or the first free active
  station of the procedure's modality, with the web's calendar rules); without one it is
  placed **awaiting booking** and shows on the front desk's "to be booked" list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from ris.errors import ApplicationError, Conflict, InvalidTransition, NotFound
from scheduling import services as sched
from scheduling.models import Order, Priority, ProcedureStatus, ProcedureType, RequestedProcedure, Station

logger = logging.getLogger(__name__)
S = ProcedureStatus


@dataclass
class ExternalOrder:
    placer_order_number: str
    placer_authority: str
    procedure_code: str = ""
    coding_scheme: str = ""
    priority: str = Priority.ROUTINE
    reason: str = ""
    clinical_info: str = ""
    referring_physician: str = ""
    requesting_physician: str = ""
    requesting_service: str = ""  # ordering location / department
    admission_id: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""
    study_instance_uid: str = ""
    station_ae_title: str = ""
    modality: str = ""
    start: datetime | None = None
    ordered_at: datetime | None = None


class DuplicatePlacerOrder(Conflict):
    """The placer already placed an order with this number; ``order`` is that order."""

    def __init__(self, order: Order):
        super().__init__(
            "An order with this placer order number already exists.",
            fields={"placer_order_number": ["Already placed."]},
        )
        self.order = order


def order_get_by_placer(*, placer_authority: str, placer_order_number: str) -> Order | None:
    return (
        Order.objects.filter(placer_authority=placer_authority, placer_order_number=placer_order_number)
        .select_related("patient")
        .first()
    )


def _procedure_type(data: ExternalOrder) -> ProcedureType:
    code = (data.procedure_code or "").strip()
    if not code:
        raise ApplicationError("The procedure code is missing.", fields={"procedure_code": ["Required."]})
    qs = ProcedureType.objects.filter(code_value=code, active=True)
    if data.coding_scheme:
        qs = qs.filter(coding_scheme=data.coding_scheme)
    found = list(qs[:2])
    if len(found) != 1:
        raise ApplicationError(
            f"Unknown procedure code {code!r}." if not found else f"Procedure code {code!r} is ambiguous.",
            fields={"procedure_code": ["Not in the procedure catalog." if not found else "Ambiguous."]},
        )
    return found[0]


def _stations(data: ExternalOrder, ptype: ProcedureType) -> list[Station]:
    if data.station_ae_title:
        station = Station.objects.filter(ae_title=data.station_ae_title, active=True).first()
        if station is None:
            raise ApplicationError(
                f"Unknown station {data.station_ae_title!r}.",
                fields={"station_ae_title": ["Not an active station."]},
            )
        return [station]
    modality = data.modality or ptype.modality
    return list(Station.objects.filter(active=True, modality=modality).order_by("ae_title"))


def _order_kwargs(data: ExternalOrder) -> dict:
    return {
        "priority": data.priority or Priority.ROUTINE,
        "referring_physician": data.referring_physician,
        "requesting_physician": data.requesting_physician,
        "requesting_service": data.requesting_service,
        "reason": data.reason,
        "clinical_info": data.clinical_info,
        "admission_id": data.admission_id,
    }


def external_order_place(*, patient, data: ExternalOrder, source: str, actor=None, request=None) -> Order:
    """Create the order (booked when ``data.start`` is given, else awaiting booking).

    Raises :class:`DuplicatePlacerOrder` when the placer number is already used by this
    placer (FHIR conditional create returns that order; HL7 answers AE).
    """
    if not data.placer_order_number:
        raise ApplicationError(
            "The placer order number is missing.", fields={"placer_order_number": ["Required."]}
        )
    existing = order_get_by_placer(
        placer_authority=data.placer_authority, placer_order_number=data.placer_order_number
    )
    if existing is not None:
        raise DuplicatePlacerOrder(existing)
    ptype = _procedure_type(data)
    common = dict(
        patient=patient,
        procedure_type=ptype,
        actor=actor,
        request=request,
        source=source,
        placer_order_number=data.placer_order_number,
        filler_order_number="",
        accession_number=data.accession_number or None,
        requested_procedure_id=data.requested_procedure_id or None,
        sps_id=data.sps_id or None,
        study_instance_uid=data.study_instance_uid or None,
        ordered_at=data.ordered_at,
        **_order_kwargs(data),
    )
    try:
        with transaction.atomic():
            if data.start is None:
                order = sched.order_create(station=None, start=None, **common)
            else:
                order = _place_booked(data, ptype, common)
            # The filler order number is the Accession Number (one RIS, one namespace).
            Order.objects.filter(pk=order.pk).update(
                placer_authority=data.placer_authority, filler_order_number=order.accession_number
            )
            order.placer_authority = data.placer_authority
            order.filler_order_number = order.accession_number
    except IntegrityError as exc:
        # A concurrent placement of the same placer number won the unique constraint.
        existing = order_get_by_placer(
            placer_authority=data.placer_authority, placer_order_number=data.placer_order_number
        )
        if existing is not None:
            raise DuplicatePlacerOrder(existing) from exc
        raise Conflict("An identifier of this order is already in use.") from exc
    logger.info(
        "external order placed: order %s from %s (%s)",
        order.pk,
        source,
        "booked" if data.start else "to book",
    )
    return order


def _place_booked(data: ExternalOrder, ptype: ProcedureType, common: dict) -> Order:
    stations = _stations(data, ptype)
    if not stations:
        raise ApplicationError(
            f"No active {ptype.modality} station for this procedure.",
            fields={"modality": ["No active station."]},
        )
    last: ApplicationError | None = None
    for station in stations:
        try:
            with transaction.atomic():
                return sched.order_create(station=station, start=data.start, **common)
        except ApplicationError as exc:
            if exc.fields and set(exc.fields) <= {"start"}:
                last = exc  # this station is busy/closed then: try the next one
                continue
            raise
    assert last is not None
    raise type(last)(str(last), fields={"start": list(last.fields.get("start", [])) or [str(last)]})


def _order_for(placer_authority: str, placer_order_number: str) -> Order:
    order = order_get_by_placer(placer_authority=placer_authority, placer_order_number=placer_order_number)
    if order is None:
        raise NotFound(
            "No order with this placer order number.", fields={"placer_order_number": ["Unknown."]}
        )
    return order


@transaction.atomic
def external_order_cancel(
    *, placer_authority: str, placer_order_number: str, reason: str, source: str, actor=None
) -> Order:
    """Cancel every procedure of the order (allowed before the exam starts)."""
    order = _order_for(placer_authority, placer_order_number)
    procs = list(RequestedProcedure.objects.select_for_update().filter(order=order))
    blocked = [p for p in procs if p.status not in sched.TRANSITIONS["cancel"].sources]
    if blocked:
        raise InvalidTransition(
            f"Cannot cancel an order whose procedure is {blocked[0].get_status_display().lower()}.",
            fields={"order_control": [f"Procedure is {blocked[0].status}."]},
        )
    for proc in procs:
        sched.procedure_cancel(
            procedure=proc, reason=reason or "cancelled by placer", actor=actor, source=source
        )
    return order


@transaction.atomic
def external_order_discontinue(
    *, placer_authority: str, placer_order_number: str, reason: str, source: str, actor=None
) -> Order:
    """Stop the order: an exam in progress is discontinued, one not yet started is cancelled."""
    order = _order_for(placer_authority, placer_order_number)
    procs = list(RequestedProcedure.objects.select_for_update().filter(order=order))
    finished = [p for p in procs if p.status in (S.COMPLETED, S.DISCONTINUED, S.CANCELLED)]
    if len(finished) == len(procs):
        raise InvalidTransition(
            "Cannot discontinue an order that is already finished.",
            fields={"order_control": ["Order is finished."]},
        )
    why = reason or "discontinued by placer"
    for proc in procs:
        if proc.status == S.IN_PROGRESS:
            sched.procedure_discontinue(procedure=proc, reason=why, actor=actor, source=source)
        elif proc.status in sched.TRANSITIONS["cancel"].sources:
            sched.procedure_cancel(procedure=proc, reason=why, actor=actor, source=source)
    return order


@transaction.atomic
def external_order_change(*, data: ExternalOrder, source: str, actor=None) -> Order:
    """Change an open order: clinical details, and the booking when a start time is given
    (books an order awaiting booking; moves a booked one). The procedure cannot change."""
    order = _order_for(data.placer_authority, data.placer_order_number)
    procs = list(
        RequestedProcedure.objects.select_for_update().filter(order=order).select_related("procedure_type")
    )
    open_procs = [p for p in procs if p.status in sched.OPEN_STATUSES]
    if not open_procs:
        raise InvalidTransition(
            "Cannot change an order that has started or finished.",
            fields={"order_control": ["Order is not open."]},
        )
    if data.procedure_code:
        ptype = _procedure_type(data)
        if any(p.procedure_type_id != ptype.pk for p in procs):
            raise ApplicationError(
                "The procedure of an order cannot change; cancel it and place a new order.",
                fields={"procedure_code": ["Differs from the order's procedure."]},
            )
    sched.order_update(order=order, actor=actor, source=source, **_order_kwargs(data))
    if data.start is not None:
        for proc in open_procs:
            step = proc.steps.exclude(status__in=("COMPLETED", "DISCONTINUED", "CANCELED")).first()
            stations = _stations(data, proc.procedure_type)
            if proc.status == S.REQUESTED:
                _try_stations(
                    stations,
                    lambda st, p=proc: sched.procedure_book(
                        procedure=p, station=st, start=data.start, actor=actor, source=source
                    ),
                )
            elif (
                step is not None
                and step.station is not None
                and (
                    step.start != data.start
                    or (data.station_ae_title and step.station.ae_title != data.station_ae_title)
                )
            ):
                if not data.station_ae_title:
                    current = step.station
                    stations = [current, *[s for s in stations if s.pk != current.pk]]
                _try_stations(
                    stations,
                    lambda st, p=proc, start=data.start: sched.procedure_reschedule(
                        procedure=p,
                        station=st,
                        start=start,
                        reason="changed by placer",
                        actor=actor,
                        source=source,
                    ),
                )
    order.refresh_from_db()
    return order


def _try_stations(stations, book) -> None:
    last = None
    for station in stations:
        try:
            with transaction.atomic():
                book(station)
                return
        except ApplicationError as exc:
            if exc.fields and set(exc.fields) <= {"start"}:
                last = exc
                continue
            raise
    if last is None:
        raise ApplicationError(
            "No active station for this procedure.", fields={"modality": ["No active station."]}
        )
    raise last
