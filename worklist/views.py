"""Technologist console pages (Django templates + htmx). Thin adapters over services."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_record
from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission
from scheduling.models import ProcedureStatus
from scheduling.services import allowed_actions

from . import services
from .console import (
    ConsoleFilter,
    console_columns,
    console_version,
    contrast_warning,
    exam_get,
    exam_version,
    image_check,
    qc_flags,
)
from .forms import ConsoleFilterForm, DiscontinueForm, ExamNoteForm


def _poll_seconds() -> int:
    return int(getattr(settings, "RIS_CONSOLE_POLL_SECONDS", 5))


COLUMN_LABELS = {
    "scheduled": ProcedureStatus.SCHEDULED.label,
    "arrived": ProcedureStatus.ARRIVED.label,
    "in_progress": ProcedureStatus.IN_PROGRESS.label,
    "completed": ProcedureStatus.COMPLETED.label,
    "cancelled": ProcedureStatus.CANCELLED.label,
}
CONSOLE_ACTIONS = ("arrive", "start", "complete", "discontinue")


def _filter(request) -> tuple[ConsoleFilterForm, ConsoleFilter]:
    data = request.GET.copy()
    if "modality" not in data and "station" not in data:
        profile = getattr(request.user, "ris_profile", None)
        mods = profile.modality_list if profile else []
        if len(mods) == 1:
            data["modality"] = mods[0]
    if not data.get("day"):
        data["day"] = timezone.localdate().isoformat()
    form = ConsoleFilterForm(data)
    f = ConsoleFilter(day=timezone.localdate())
    if form.is_valid():
        f.station = form.cleaned_data["station"]
        f.modality = form.cleaned_data["modality"] or ""
        f.day = form.cleaned_data["day"] or f.day
    return form, f


def _query(f: ConsoleFilter) -> str:
    parts = []
    if f.station:
        parts.append(f"station={f.station.ae_title}")
    if f.modality:
        parts.append(f"modality={f.modality}")
    if f.day != timezone.localdate():
        parts.append(f"day={f.day.isoformat()}")
    return "&".join(parts)


def _qc_labelled(flags: list[str]) -> list[tuple[str, str]]:
    """(code, label) pairs for the image QC flags of one procedure."""
    try:
        from imaging.qc import flag_label
    except ImportError:  # pragma: no cover
        return [(f, f) for f in flags]
    return [(f, flag_label(f)) for f in flags]


def _board_context(f: ConsoleFilter) -> dict:
    columns = console_columns(f)
    # One query for the whole board, however many exams it shows.
    flags = qc_flags([s.requested_procedure_id for _key, steps in columns for s in steps])
    for _key, steps in columns:
        for step in steps:
            step.qc_flags = _qc_labelled(flags.get(step.requested_procedure_id, []))
    return {
        "columns": [(key, COLUMN_LABELS[key], steps) for key, steps in columns],
        "version": console_version(f),
        "query": _query(f),
        "poll_seconds": _poll_seconds(),
        "updated": timezone.localtime(),
        "total": sum(len(steps) for _key, steps in columns),
    }


def _audit_list(request, f: ConsoleFilter, ctx: dict, action: str) -> None:
    audit_record(
        action=action,
        request=request,
        object_type="console",
        object_id=f.station.ae_title if f.station else f.modality or "all",
        detail={
            "day": f.day.isoformat(),
            "patients": sorted(
                {s.requested_procedure.order.patient_id for _k, _l, steps in ctx["columns"] for s in steps}
            ),
        },
    )


@role_required("console.use")
@require_GET
def console(request):
    form, f = _filter(request)
    ctx = _board_context(f)
    _audit_list(request, f, ctx, "console.view")
    from .models import MPPSException

    open_exceptions = MPPSException.objects.filter(resolved_at__isnull=True).count()
    return render(
        request,
        "worklist/console.html",
        {
            "form": form,
            "filter": f,
            "open_exceptions": open_exceptions,
            "can_import": has_permission(request.user, "worklist.import"),
            **ctx,
        },
    )


@role_required("console.use")
@require_GET
def console_board(request):
    """The polled partial: 204 (nothing to swap, nothing shown, nothing audited) while unchanged."""
    _form, f = _filter(request)
    if request.GET.get("v") and request.GET["v"] == console_version(f):
        return HttpResponse(status=204)
    ctx = _board_context(f)
    _audit_list(request, f, ctx, "console.refresh")
    return render(request, "worklist/_console_board.html", ctx)


def _exam_or_404(pk: int):
    proc = exam_get(pk)
    if proc is None:
        raise Http404
    return proc


def _exam_context(request, proc) -> dict:
    actions = [a for a in allowed_actions(proc.status) if a in CONSOLE_ACTIONS]
    mpps_list = list(proc.performed_steps.all())
    steps = list(proc.steps.all())
    return {
        "proc": proc,
        "patient": proc.order.patient,
        "steps": steps,
        "contrast_warning": contrast_warning(proc, steps),
        "mpps_list": mpps_list,
        "image_check": image_check(proc, mpps_list),
        "qc_flags": _qc_labelled(qc_flags([proc.pk]).get(proc.pk, [])),
        "notes": list(proc.exam_notes.all()),
        "events": list(proc.events.all()),
        "actions": actions,
        "version": exam_version(proc),
        "poll_seconds": _poll_seconds(),
    }


@role_required("console.use")
@require_GET
def exam(request, pk: int):
    proc = _exam_or_404(pk)
    ctx = _exam_context(request, proc)
    audit_record(
        action="console.exam_view",
        request=request,
        object_type="procedure",
        object_id=proc.pk,
        patient_id=proc.order.patient_id,
    )
    return render(
        request,
        "worklist/exam.html",
        {**ctx, "note_form": ExamNoteForm(), "discontinue_form": DiscontinueForm()},
    )


@role_required("console.use")
@require_GET
def exam_status(request, pk: int):
    proc = _exam_or_404(pk)
    if request.GET.get("v") and request.GET["v"] == exam_version(proc):
        return HttpResponse(status=204)
    ctx = _exam_context(request, proc)
    audit_record(
        action="console.exam_refresh",
        request=request,
        object_type="procedure",
        object_id=proc.pk,
        patient_id=proc.order.patient_id,
    )
    return render(request, "worklist/_exam_status.html", ctx)


@role_required("console.use")
@require_POST
def exam_action(request, pk: int, action: str):
    proc = _exam_or_404(pk)
    if action not in CONSOLE_ACTIONS:
        raise Http404
    try:
        if action == "arrive":
            services.console_arrive(procedure=proc, actor=request.user, request=request)
        elif action == "start":
            services.console_start(procedure=proc, actor=request.user, request=request)
        elif action == "complete":
            services.console_complete(procedure=proc, actor=request.user, request=request)
        else:
            form = DiscontinueForm(request.POST)
            if not form.is_valid():
                raise ApplicationError(_("A reason is required to discontinue."))
            services.console_discontinue(
                procedure=proc, reason=form.cleaned_data["reason"], actor=request.user, request=request
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Exam updated."))
    return redirect(reverse("worklist:exam", args=[proc.pk]))


@role_required("console.use")
@require_POST
def exam_note(request, pk: int):
    proc = _exam_or_404(pk)
    form = ExamNoteForm(request.POST)
    if form.is_valid():
        try:
            services.exam_note_add(
                procedure=proc, actor=request.user, request=request, **form.service_kwargs()
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Note saved."))
            return redirect(reverse("worklist:exam", args=[proc.pk]))
    ctx = _exam_context(request, proc)
    audit_record(
        action="console.exam_view",
        request=request,
        object_type="procedure",
        object_id=proc.pk,
        patient_id=proc.order.patient_id,
        detail={"note_rejected": True},
    )
    return render(
        request,
        "worklist/exam.html",
        {**ctx, "note_form": form, "discontinue_form": DiscontinueForm()},
        status=400,
    )


@role_required("worklist.import")
def import_worklists_page(request):
    """Upload DCMTK/Orthanc worklist files (administrators): each file imported or refused whole."""
    from .forms import WorklistImportForm
    from .importer import import_worklist_file

    results = []
    if request.method == "POST":
        form = WorklistImportForm(request.POST, request.FILES)
        if form.is_valid():
            for upload in form.cleaned_data["files"]:
                results.append(
                    import_worklist_file(
                        upload.file,
                        name=upload.name,
                        create_stations=form.cleaned_data["create_stations"],
                        actor=request.user,
                    )
                )
            audit_record(
                action="worklist.import",
                request=request,
                object_type="worklist_import",
                detail={"files": len(results), "imported": sum(r.ok for r in results)},
            )
    else:
        form = WorklistImportForm()
    return render(request, "worklist/import.html", {"form": form, "results": results})


@role_required("console.use")
def mpps_exceptions(request):
    """Open MPPS exceptions (unscheduled or partly linked exams) and their reconciliation."""
    from scheduling.models import RequestedProcedure

    from .models import MPPSException

    if request.method == "POST":
        exc = MPPSException.objects.select_related("mpps").filter(pk=request.POST.get("exception")).first()
        if exc is None:
            raise Http404
        procedure = None
        accession = (request.POST.get("accession_number") or "").strip()
        if request.POST.get("action") == "link":
            procedure = (
                RequestedProcedure.objects.select_related("order")
                .filter(order__accession_number=accession)
                .order_by("pk")
                .first()
            )
            if procedure is None:
                messages.error(request, _("No procedure with Accession Number %(acc)s.") % {"acc": accession})
                return redirect("worklist:mpps_exceptions")
        try:
            problems = services.mpps_exception_resolve(
                exception=exc, procedure=procedure, actor=request.user, request=request
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            if problems:
                messages.warning(request, "; ".join(problems))
            messages.success(request, _("Exception resolved."))
        return redirect("worklist:mpps_exceptions")
    items = list(
        MPPSException.objects.filter(resolved_at__isnull=True)
        .select_related("mpps", "mpps__patient")
        .order_by("-created_at")[:200]
    )
    for item in items:
        attrs = item.mpps.attributes or {}
        item.sent_patient_id = ((attrs.get("00100020") or {}).get("Value") or [""])[0]
        name = ((attrs.get("00100010") or {}).get("Value") or [{}])[0]
        sent = name.get("Alphabetic", "") if isinstance(name, dict) else str(name)
        item.sent_patient_name = sent.replace("^", " ").strip()
    audit_record(
        action="console.mpps_exceptions",
        request=request,
        object_type="mpps_exception",
        detail={"shown": len(items)},
    )
    return render(request, "worklist/mpps_exceptions.html", {"items": items})
