"""Front-desk pages for scheduling: order entry with booking, order confirmation, check-in,
cancel, reschedule, the station day calendar and the department board.

Thin adapters: forms validate, services write (and audit), selectors read. A response that
shows patient data writes exactly one audit event; a successful write redirects.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Max, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import audit_record
from registration.forms import apply_service_errors, translated
from registration.models import Patient, PregnancyStatus
from registration.selectors import patient_list
from ris.errors import ApplicationError, InvalidTransition
from ris.permissions import role_required
from ris.roles import has_permission

from .forms import (
    CANCEL_REASONS,
    RESCHEDULE_REASONS,
    BookingForm,
    CancelForm,
    DowntimeForm,
    OrderForm,
    RescheduleForm,
    slot_value,
)
from .models import (
    Modality,
    Order,
    ProcedureEvent,
    ProcedureStatus,
    ProcedureType,
    RequestedProcedure,
    Station,
)
from .selectors import board_for_day, day_bounds, procedure_list_for, station_day_slots
from .services import (
    DowntimeOverlapsBookings,
    allowed_actions,
    order_create,
    procedure_book,
    procedure_cancel,
    procedure_mark_arrived,
    procedure_reschedule,
    station_add_downtime,
)

logger = logging.getLogger(__name__)


# How far ahead the booking widget looks for the first day with a free slot.
NEXT_FREE_DAY_SEARCH = 14


def board_poll_seconds() -> int:
    return int(getattr(settings, "RIS_BOARD_POLL_SECONDS", 10))


EVENT_LABELS = {
    "order": gettext_lazy("Ordered"),
    "arrive": gettext_lazy("Checked in"),
    "start": gettext_lazy("Started"),
    "complete": gettext_lazy("Completed"),
    "discontinue": gettext_lazy("Discontinued"),
    "cancel": gettext_lazy("Cancelled"),
    "reschedule": gettext_lazy("Rescheduled"),
    "images_available": gettext_lazy("Images available"),
}


def _parse_day(value, default: date | None = None) -> date:
    """A day from a query string; anything unreadable or absurd (year 1, 9999) is today."""
    today = timezone.localdate()
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        return default or today
    return day if abs((day - today).days) <= 3660 else today


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _active_procedure_type(value) -> ProcedureType | None:
    pk = _int_or_none(value)
    return ProcedureType.objects.filter(pk=pk, active=True).first() if pk is not None else None


def _safe_next(request, fallback: str) -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return nxt
    return fallback


def _transition_error(request, exc: ApplicationError) -> None:
    if isinstance(exc, InvalidTransition):
        messages.error(request, _("This procedure has changed meanwhile; the action is no longer possible."))
    else:
        messages.error(request, translated(exc.message))


# ---------------------------------------------------------------------------------------
# Booking widget (shared by order entry and reschedule)


def booking_context(
    *,
    data,
    procedure_type: ProcedureType | None,
    modality: str | None,
    exclude_step=None,
    errors=None,
) -> dict:
    """Stations for the modality, the chosen station and day, and that day's slots.

    ``data`` is the GET/POST mapping (station, day, start, shift).
    """
    modality = procedure_type.modality if procedure_type else modality
    stations = list(Station.objects.filter(active=True, **({"modality": modality} if modality else {})))
    station = None
    if data.get("station"):
        station = next((s for s in stations if str(s.pk) == str(data.get("station"))), None)
    station = station or (stations[0] if stations else None)
    day = _parse_day(data.get("day"))
    try:
        shift = int(data.get("shift", 0) or 0)
    except ValueError:
        shift = 0
    day += timedelta(days=max(-31, min(31, shift)))
    duration = procedure_type.duration_minutes if procedure_type else None
    if exclude_step is not None and not duration:
        duration = int((exclude_step.end - exclude_step.start).total_seconds() // 60)
    slots = []
    advanced_from = None
    if station is not None and (procedure_type is not None or exclude_step is not None):
        exclude_id = exclude_step.pk if exclude_step is not None else None
        slots = station_day_slots(
            station=station, day=day, duration_minutes=duration, exclude_step_id=exclude_id
        )
        if not data.get("day") and not any(s.state == "free" for s in slots):
            # No day chosen yet and nothing left today: open on the next day with a free slot.
            for ahead in range(1, NEXT_FREE_DAY_SEARCH + 1):
                candidate = day + timedelta(days=ahead)
                found = station_day_slots(
                    station=station, day=candidate, duration_minutes=duration, exclude_step_id=exclude_id
                )
                if any(s.state == "free" for s in found):
                    advanced_from, day, slots = day, candidate, found
                    break
        if exclude_step is not None and exclude_step.station_id == station.pk:
            # Where the procedure starts now: shown, not offered (moving there changes nothing).
            # The rest of its current time is free to move into, as the service allows.
            for slot in slots:
                if slot.start == exclude_step.start:
                    slot.state = "current"
    for slot in slots:
        slot.value = slot_value(slot.start)
    chosen = data.get("start", "")
    if chosen and not any(s.value == chosen and s.state == "free" for s in slots):
        chosen = ""
    return {
        "stations": stations,
        "station": station,
        "day": day,
        "today": timezone.localdate(),
        "slots": slots,
        "free_count": sum(1 for s in slots if s.state == "free"),
        "chosen": chosen,
        "procedure_type": procedure_type,
        "booking_errors": errors or [],
        "advanced_from": advanced_from,
    }


@require_GET
@role_required("station.view")
def slot_picker(request):
    """htmx: station + date → the booking widget with that day's free slots."""
    ptype = _active_procedure_type(request.GET.get("procedure_type"))
    exclude_step = None
    modality = request.GET.get("modality") if request.GET.get("modality") in Modality.values else None
    if request.GET.get("procedure"):
        proc = get_object_or_404(procedure_list_for(request.user), pk=_int_or_none(request.GET["procedure"]))
        exclude_step = _open_step(proc)
        if exclude_step is not None and exclude_step.start is None:
            # Awaiting booking: nothing to exclude; the procedure's own type sets the duration.
            exclude_step, ptype = None, proc.procedure_type
        modality = exclude_step.station.modality if exclude_step else (ptype.modality if ptype else modality)
    context = booking_context(
        data=request.GET, procedure_type=ptype, modality=modality, exclude_step=exclude_step
    )
    context["for_procedure"] = request.GET.get("procedure", "")
    return render(request, "scheduling/_booking.html", context)


# ---------------------------------------------------------------------------------------
# Order entry


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("order.create")
def order_create_view(request, patient_pk: int):
    patient = get_object_or_404(patient_list(), pk=patient_pk)
    if request.method == "POST":
        form = OrderForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                order = order_create(
                    patient=patient,
                    procedure_type=data["procedure_type"],
                    station=data["station"],
                    start=data["start"],
                    priority=data["priority"],
                    referring_physician=data["referring_physician"].strip(),
                    reason=data["reason"].strip(),
                    clinical_info=data["clinical_info"].strip(),
                    actor=request.user,
                    request=request,
                )
            except ApplicationError as exc:
                apply_service_errors(form, exc, aliases={"start": "start"})
            else:
                messages.success(request, _("Order placed and booked."))
                return redirect("scheduling:order_detail", pk=order.pk)
        data = request.POST
        ptype = form.cleaned_data.get("procedure_type") if hasattr(form, "cleaned_data") else None
        ptype = ptype or _active_procedure_type(data.get("procedure_type"))
    else:
        form = OrderForm(initial={"day": timezone.localdate()})
        data = request.GET
        ptype = _active_procedure_type(data.get("procedure_type"))
        if ptype is not None:
            form.initial["procedure_type"] = ptype
    booking = booking_context(
        data=data,
        procedure_type=ptype,
        modality=None,
        errors=[*form.errors.get("start", []), *form.errors.get("station", []), *form.errors.get("day", [])],
    )
    audit_record(
        action="patient.view",
        request=request,
        object_type="patient",
        object_id=patient.pk,
        patient_id=patient.pk,
        detail={"purpose": "order"},
    )
    return render(
        request,
        "scheduling/order_form.html",
        {"form": form, "patient": patient, "pregnancy_check": _pregnancy_not_ruled_out(patient), **booking},
    )


def _pregnancy_not_ruled_out(patient: Patient) -> bool:
    """A woman of child-bearing age whose record does not say "not pregnant" (radiation safety)."""
    if patient.sex != "F" or not patient.birth_date:
        return False
    today = timezone.localdate()
    age = (
        today.year
        - patient.birth_date.year
        - ((today.month, today.day) < (patient.birth_date.month, patient.birth_date.day))
    )
    return 12 <= age <= 55 and patient.pregnancy_status != PregnancyStatus.NOT_PREGNANT


@never_cache
@require_GET
@role_required("order.view")
def order_detail_view(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("patient", "created_by"), pk=pk)
    procedures = list(
        procedure_list_for(request.user)
        .filter(order=order)
        .prefetch_related(Prefetch("events", queryset=ProcedureEvent.objects.select_related("actor")))
    )
    if not procedures:
        # Out of the user's object scope.
        return HttpResponse(status=404)
    statuses = dict(ProcedureStatus.choices)
    for proc in procedures:
        proc.history = list(proc.events.all())
        for ev in proc.history:
            ev.action_label = EVENT_LABELS.get(ev.action, ev.action)
            ev.from_label = statuses.get(ev.from_status, ev.from_status)
            ev.to_label = statuses.get(ev.to_status, ev.to_status)
        proc.step_list = list(proc.steps.all())
        proc.actions = [
            a for a in allowed_actions(proc.status) if has_permission(request.user, f"procedure.{a}")
        ]
    audit_record(
        action="order.view",
        request=request,
        object_type="order",
        object_id=order.pk,
        patient_id=order.patient_id,
    )
    return render(
        request,
        "scheduling/order_detail.html",
        {"order": order, "patient": order.patient, "procedures": procedures},
    )


# ---------------------------------------------------------------------------------------
# Transitions


def _open_step(proc: RequestedProcedure):
    steps = [s for s in proc.steps.all() if s.status in ("SCHEDULED", "ARRIVED", "STARTED")]
    return steps[-1] if steps else None


def _procedure_for(request, pk: int) -> RequestedProcedure:
    return get_object_or_404(procedure_list_for(request.user), pk=pk)


@require_POST
@role_required("procedure.arrive")
def procedure_arrive_view(request, pk: int):
    proc = _procedure_for(request, pk)
    fallback = reverse("registration:patient_detail", args=[proc.order.patient_id])
    try:
        procedure_mark_arrived(procedure=proc, actor=request.user, request=request)
    except ApplicationError as exc:
        _transition_error(request, exc)
    else:
        messages.success(
            request,
            _("%(name)s checked in for %(procedure)s.")
            % {"name": proc.order.patient.display_name, "procedure": proc.procedure_type.code_meaning},
        )
    return redirect(_safe_next(request, fallback))


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("procedure.cancel")
def procedure_cancel_view(request, pk: int):
    proc = _procedure_for(request, pk)
    patient_url = reverse("registration:patient_detail", args=[proc.order.patient_id])
    if request.method == "POST":
        form = CancelForm(request.POST)
        if form.is_valid():
            try:
                procedure_cancel(
                    procedure=proc, reason=form.cleaned_data["reason"], actor=request.user, request=request
                )
            except InvalidTransition as exc:
                _transition_error(request, exc)
                return redirect(patient_url)
            except ApplicationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, _("The procedure was cancelled."))
                return redirect(patient_url)
    else:
        form = CancelForm()
    _audit_procedure_view(request, proc, "cancel")
    return render(
        request,
        "scheduling/procedure_cancel.html",
        {"form": form, "proc": proc, "step": _open_step(proc), "reasons": CANCEL_REASONS},
    )


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("procedure.reschedule")
def procedure_reschedule_view(request, pk: int):
    proc = _procedure_for(request, pk)
    step = _open_step(proc)
    patient_url = reverse("registration:patient_detail", args=[proc.order.patient_id])
    if step is None:
        messages.error(request, _("This procedure has no open booking to move."))
        return redirect(patient_url)
    if request.method == "POST":
        form = RescheduleForm(request.POST)
        form.fields["station"].queryset = Station.objects.filter(active=True, modality=step.station.modality)
        if form.is_valid():
            try:
                procedure_reschedule(
                    procedure=proc,
                    start=form.cleaned_data["start"],
                    station=form.cleaned_data["station"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    request=request,
                )
            except InvalidTransition as exc:
                if exc.fields:
                    apply_service_errors(form, exc)
                else:
                    _transition_error(request, exc)
                    return redirect(patient_url)
            except ApplicationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Moved to %(start)s on %(station)s.")
                    % {
                        "start": timezone.localtime(form.cleaned_data["start"]).strftime("%Y-%m-%d %H:%M"),
                        "station": form.cleaned_data["station"].ae_title,
                    },
                )
                return redirect(patient_url)
        data = request.POST
    else:
        form = RescheduleForm(
            initial={"station": step.station_id, "day": timezone.localtime(step.start).date()}
        )
        data = {"station": step.station_id, "day": timezone.localtime(step.start).date().isoformat()}
    booking = booking_context(
        data=data,
        procedure_type=None,
        modality=step.station.modality,
        exclude_step=step,
        errors=[*form.errors.get("start", []), *form.errors.get("station", [])],
    )
    _audit_procedure_view(request, proc, "reschedule")
    return render(
        request,
        "scheduling/procedure_reschedule.html",
        {
            "form": form,
            "proc": proc,
            "step": step,
            "reasons": RESCHEDULE_REASONS,
            "for_procedure": proc.pk,
            **booking,
        },
    )


def _audit_procedure_view(request, proc: RequestedProcedure, purpose: str) -> None:
    audit_record(
        action="procedure.view",
        request=request,
        object_type="procedure",
        object_id=proc.pk,
        patient_id=proc.order.patient_id,
        detail={"purpose": purpose},
    )


# ---------------------------------------------------------------------------------------
# Calendar and board


@never_cache
@require_GET
@role_required("station.view")
def calendar_view(request):
    stations = list(Station.objects.filter(active=True))
    station = next((s for s in stations if str(s.pk) == request.GET.get("station")), None)
    station = station or (stations[0] if stations else None)
    day = _parse_day(request.GET.get("day"))
    slots = station_day_slots(station=station, day=day) if station else []
    # Object scope: who is booked is shown only for procedures the user may see.
    booked_ids = {s.step.requested_procedure_id for s in slots if s.step is not None}
    visible = (
        set(procedure_list_for(request.user).filter(pk__in=booked_ids).values_list("pk", flat=True))
        if booked_ids
        else set()
    )
    for slot in slots:
        slot.visible = slot.step is not None and slot.step.requested_procedure_id in visible
    patients = sorted({s.step.requested_procedure.order.patient_id for s in slots if s.visible})
    previous = None
    rows = []
    for slot in slots:
        slot.continued = slot.step is not None and previous is not None and previous.step == slot.step
        slot.span_end = slot.end
        last = rows[-1] if rows else None
        if last is not None and slot.state == last.state == "past":
            # Empty time that has gone by is one row, not a screenful; so is one downtime block.
            last.span_end = slot.end
        elif last is not None and slot.state == last.state == "down" and slot.downtime == last.downtime:
            last.span_end = slot.end
        else:
            rows.append(slot)
        previous = slot
    if patients:
        audit_record(
            action="station.calendar.view",
            request=request,
            object_type="station",
            object_id=station.pk,
            detail={"day": day.isoformat(), "patients": patients},
        )
    can_manage = has_permission(request.user, "station.manage")
    downtime_form = (
        DowntimeForm(initial={"station": station, "day": day}) if (can_manage and station) else None
    )
    counts = {state: sum(1 for s in slots if s.state == state) for state in ("free", "booked", "down")}
    return render(
        request,
        "scheduling/calendar.html",
        {
            "stations": stations,
            "station": station,
            "day": day,
            "prev_day": day - timedelta(days=1),
            "next_day": day + timedelta(days=1),
            "today": timezone.localdate(),
            "slots": slots,
            "rows": rows,
            "counts": counts,
            "downtime_form": downtime_form,
            "can_order": has_permission(request.user, "order.create"),
        },
    )


@require_POST
@role_required("station.manage")
def downtime_add_view(request):
    form = DowntimeForm(request.POST)
    if form.is_valid():
        start, end = form.bounds()
        try:
            station_add_downtime(
                station=form.cleaned_data["station"],
                start=start,
                end=end,
                reason=form.cleaned_data["reason"],
                actor=request.user,
                confirm_overlaps=form.cleaned_data["confirm_overlaps"],
            )
        except DowntimeOverlapsBookings as exc:
            # Confirm step: the booked patients are listed before anything is saved.
            return render(
                request,
                "scheduling/downtime_confirm.html",
                {"form": form, "overlaps": exc.overlaps, "station": form.cleaned_data["station"]},
            )
        except ApplicationError as exc:
            messages.error(request, translated(exc.message))
        else:
            messages.success(request, _("Downtime added."))
    else:
        # Field labels, not internal names, beside each message.
        messages.error(
            request,
            " ".join(
                f"{form.fields[name].label}: {e}"
                if name in form.fields and form.fields[name].label
                else str(e)
                for name, errors in form.errors.items()
                for e in errors
            ),
        )
    station_pk = request.POST.get("station", "")
    day = request.POST.get("day", "")
    return redirect(f"{reverse('scheduling:calendar')}?station={station_pk}&day={day}")


def _url_template(name: str) -> str:
    """``/patients/{}/`` for a URL name taking one integer argument."""
    marker = 987654321
    return reverse(name, args=[marker]).replace(str(marker), "{}")


def _board_version(user, day: date, modality: str) -> str:
    start, end = day_bounds(day)
    qs = procedure_list_for(user).filter(steps__start__gte=start, steps__start__lt=end)
    if modality:
        qs = qs.filter(procedure_type__modality=modality)
    agg = qs.aggregate(n=Count("id", distinct=True), last=Max("updated_at"))
    raw = f"{day}|{modality}|{agg['n']}|{agg['last'].isoformat() if agg['last'] else ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@never_cache
@require_GET
@role_required("board.view")
def board_view(request):
    day = timezone.localdate()
    modality = request.GET.get("modality", "")
    modality = modality if modality in Modality.values else ""
    version = _board_version(request.user, day, modality)
    if request.htmx and request.GET.get("v") == version:
        # Nothing changed since the last refresh: no swap, no patient data sent, nothing to audit.
        return HttpResponse(status=204)
    columns = board_for_day(user=request.user, day=day)
    if modality:
        columns = {k: [p for p in v if p.procedure_type.modality == modality] for k, v in columns.items()}
    patients = set()
    # reverse() per card dominates rendering a busy board; build each URL family once.
    patient_url, arrive_url = (
        _url_template("registration:patient_detail"),
        _url_template("scheduling:procedure_arrive"),
    )
    for procs in columns.values():
        for proc in procs:
            steps = list(proc.steps.all())
            proc.step = steps[-1] if steps else None
            proc.patient_url = patient_url.format(proc.order.patient_id)
            proc.arrive_url = arrive_url.format(proc.pk)
            patients.add(proc.order.patient_id)
    if patients:
        audit_record(
            action="board.view",
            request=request,
            object_type="board",
            object_id=day.isoformat(),
            detail={"patients": sorted(patients), "refresh": bool(request.htmx)},
        )
    labels = dict(ProcedureStatus.choices)
    context = {
        "day": day,
        "columns": [(key, labels[key], procs) for key, procs in columns.items()],
        "modality": modality,
        "modalities": sorted(set(Station.objects.filter(active=True).values_list("modality", flat=True))),
        "version": version,
        "poll_seconds": board_poll_seconds(),
        # Stop polling a minute before the session would expire from inactivity.
        "idle_seconds": max(60, settings.SESSION_COOKIE_AGE - 60),
        "can_arrive": has_permission(request.user, "procedure.arrive"),
        "updated": timezone.localtime(),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "scheduling/_board.html" if partial else "scheduling/board.html"
    return render(request, template, context)


# ---------------------------------------------------------------------------------------
# Orders awaiting booking (placed by the HIS without a slot)


@never_cache
@require_GET
@role_required("procedure.book")
def to_book_view(request):
    """The front desk's "to be booked" list: procedures ``requested``, oldest order first."""
    procs = list(
        procedure_list_for(request.user)
        .filter(status=ProcedureStatus.REQUESTED)
        .select_related("order__patient", "procedure_type")
        .order_by("order__created_at", "id")[:500]
    )
    audit_record(
        action="procedure.list",
        request=request,
        object_type="procedure",
        object_id="to-book",
        detail={"count": len(procs)},
    )
    return render(request, "scheduling/to_book.html", {"procedures": procs})


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("procedure.book")
def procedure_book_view(request, pk: int):
    proc = _procedure_for(request, pk)
    back = reverse("scheduling:to_book")
    if proc.status != ProcedureStatus.REQUESTED:
        messages.error(request, _("This procedure is not awaiting booking."))
        return redirect(back)
    ptype = proc.procedure_type
    if request.method == "POST":
        form = BookingForm(request.POST)
        form.fields["station"].queryset = Station.objects.filter(active=True, modality=ptype.modality)
        if form.is_valid():
            try:
                procedure_book(
                    procedure=proc,
                    station=form.cleaned_data["station"],
                    start=form.cleaned_data["start"],
                    actor=request.user,
                    request=request,
                )
            except InvalidTransition as exc:
                _transition_error(request, exc)
                return redirect(back)
            except ApplicationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Booked %(start)s on %(station)s.")
                    % {
                        "start": timezone.localtime(form.cleaned_data["start"]).strftime("%Y-%m-%d %H:%M"),
                        "station": form.cleaned_data["station"].ae_title,
                    },
                )
                return redirect(back)
        data = request.POST
    else:
        form = BookingForm()
        data = request.GET
    booking = booking_context(
        data=data,
        procedure_type=ptype,
        modality=ptype.modality,
        errors=[*form.errors.get("start", []), *form.errors.get("station", [])],
    )
    _audit_procedure_view(request, proc, "book")
    return render(
        request,
        "scheduling/procedure_book.html",
        {"form": form, "proc": proc, "for_procedure": proc.pk, **booking},
    )
