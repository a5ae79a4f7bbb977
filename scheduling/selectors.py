"""Reads for scheduling: free slots, calendars, procedure lists with object scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from ris.roles import Role, user_roles

from .models import (
    ProcedureStatus,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationDowntime,
)
from .services import BOOKING_SPS_STATUSES


@dataclass
class Slot:
    start: datetime
    end: datetime
    state: str  # "free", "booked", "down", "past"
    step: ScheduledProcedureStep | None = None
    downtime: StationDowntime | None = None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    return start, start + timedelta(days=1)


def station_day_slots(
    *, station: Station, day: date, duration_minutes: int | None = None, exclude_step_id: int | None = None
) -> list[Slot]:
    """The station's calendar for one day: every slot of its grid with its state.

    A slot is free when ``duration_minutes`` (default: the station's slot length) starting
    there fits before closing without touching a booking or downtime. ``exclude_step_id``
    ignores one booking (the one being rescheduled), as ``procedure_reschedule`` does.
    """
    open_at, close_at = station.window(day)
    step_len = timedelta(minutes=station.slot_minutes)
    need = timedelta(minutes=duration_minutes or station.slot_minutes)
    bookings = ScheduledProcedureStep.objects.filter(
        station=station, status__in=BOOKING_SPS_STATUSES, start__lt=close_at, end__gt=open_at
    )
    if exclude_step_id is not None:
        bookings = bookings.exclude(pk=exclude_step_id)
    steps = list(
        bookings.select_related("requested_procedure__order__patient", "requested_procedure__procedure_type")
    )
    downs = list(StationDowntime.objects.filter(station=station, start__lt=close_at, end__gt=open_at))
    now = timezone.now()
    slots: list[Slot] = []
    t = open_at
    while t + step_len <= close_at:
        slot_end = t + step_len
        booked = next((s for s in steps if s.start and s.end and s.start < slot_end and s.end > t), None)
        down = next((d for d in downs if d.start < slot_end and d.end > t), None)
        if booked:
            slots.append(Slot(t, slot_end, "booked", step=booked))
        elif down:
            slots.append(Slot(t, slot_end, "down", downtime=down))
        elif t < now:
            slots.append(Slot(t, slot_end, "past"))
        else:
            fits = (
                t + need <= close_at
                and not any(s.start and s.end and s.start < t + need and s.end > t for s in steps)
                and not any(d.start < t + need and d.end > t for d in downs)
            )
            slots.append(Slot(t, slot_end, "free" if fits else "short"))
        t = slot_end
    return slots


def procedure_list_for(user) -> QuerySet[RequestedProcedure]:
    """Procedures the user may see. Technologists with a modality scope see only theirs."""
    qs = RequestedProcedure.objects.select_related("order__patient", "procedure_type").prefetch_related(
        Prefetch("steps", queryset=ScheduledProcedureStep.objects.select_related("station"))
    )
    roles = user_roles(user)
    if not roles:
        return qs.none()
    if roles == {Role.TECHNOLOGIST}:
        profile = getattr(user, "ris_profile", None)
        modalities = profile.modality_list if profile else []
        if modalities:
            qs = qs.filter(procedure_type__modality__in=modalities)
    return qs


def board_for_day(*, user, day: date) -> dict[str, list[RequestedProcedure]]:
    """Today's procedures grouped by where the patient is in the flow."""
    start, end = day_bounds(day)
    procs = (
        procedure_list_for(user)
        .filter(steps__start__gte=start, steps__start__lt=end)
        .exclude(status=ProcedureStatus.CANCELLED)
        .distinct()
        .order_by("steps__start")
    )
    columns: dict[str, list[RequestedProcedure]] = {
        ProcedureStatus.SCHEDULED: [],
        ProcedureStatus.ARRIVED: [],
        ProcedureStatus.IN_PROGRESS: [],
        ProcedureStatus.COMPLETED: [],
    }
    for proc in procs:
        key = ProcedureStatus.COMPLETED if proc.status == ProcedureStatus.DISCONTINUED else proc.status
        columns.setdefault(key, []).append(proc)
    return columns


def downtime_overlapping_bookings(
    *, station: Station | int, start: datetime, end: datetime
) -> list[ScheduledProcedureStep]:
    """The live bookings (scheduled, arrived, started) a downtime [start, end) on ``station`` would hit.

    Shown before a downtime is saved (calendar, equipment page, admin, API) and the list a
    rebooking step works from; oldest first, with patient, order and procedure loaded.
    """
    station_id = station.pk if isinstance(station, Station) else int(station)
    return list(
        ScheduledProcedureStep.objects.filter(
            station_id=station_id, status__in=BOOKING_SPS_STATUSES, start__lt=end, end__gt=start
        )
        .select_related(
            "station",
            "requested_procedure__order__patient",
            "requested_procedure__procedure_type",
        )
        .order_by("start", "pk")
    )
