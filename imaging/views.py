"""Pages: reconciliation workbench, study page, thumbnails. Thin adapters over services."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from audit.services import audit_record
from ris.celery import app
from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission
from scheduling.models import RequestedProcedure

from . import previews, selectors, services
from .models import DuplicateConflict, Instance, ReceivedObject, ReconciliationItem, Study

logger = logging.getLogger(__name__)


@role_required("imaging.reconcile")
def reconciliation(request):
    items = list(selectors.reconciliation_queue()[:200])
    conflicts = list(selectors.open_conflicts()[:100])
    dead = list(selectors.dead_objects()[:100])
    audit_record(
        action="reconciliation.list",
        request=request,
        object_type="reconciliation_queue",
        detail={"items": len(items), "conflicts": len(conflicts)},
    )
    return render(
        request, "imaging/reconciliation.html", {"items": items, "conflicts": conflicts, "dead": dead}
    )


def _scheduling_procedure(pk):
    return get_object_or_404(
        RequestedProcedure.objects.select_related("order__patient", "procedure_type"), pk=pk
    )


@role_required("imaging.reconcile")
@require_http_methods(["GET", "POST"])
def reconciliation_item(request, pk: int):
    item = get_object_or_404(ReconciliationItem.objects.select_related("study", "study__patient"), pk=pk)
    study = item.study
    if request.method == "POST":
        return _reconciliation_action(request, item)
    candidates = selectors.reconciliation_candidates(study=study)
    confirm = None
    if request.GET.get("confirm"):
        confirm = _scheduling_procedure(request.GET["confirm"])
    study_patient = services._registered_patient(study.dicom_patient_id, study.issuer_of_patient_id)
    audit_record(
        action="reconciliation.view",
        request=request,
        object_type="study",
        object_id=study.pk,
        patient_id=study.patient_id,
        detail={"item": item.pk},
    )
    return render(
        request,
        "imaging/reconciliation_item.html",
        {
            "item": item,
            "study": study,
            "candidates": candidates,
            "confirm": confirm,
            "study_patient": study_patient,
            "can_merge": has_permission(request.user, "imaging.merge"),
            "rank_labels": selectors.RANK_LABELS,
        },
    )


def _reconciliation_action(request, item: ReconciliationItem):
    action = request.POST.get("action")
    back = reverse("imaging:reconciliation_item", args=[item.pk])
    try:
        if action == "link":
            if request.POST.get("confirmed") != "yes":
                return redirect(f"{back}?confirm={int(request.POST['procedure'])}")
            procedure = _scheduling_procedure(request.POST["procedure"])
            services.study_link_manual(
                study=item.study,
                procedure=procedure,
                actor=request.user,
                request=request,
                note=request.POST.get("note", "")[:255],
            )
            messages.success(
                request, _("Study linked to %(acc)s.") % {"acc": procedure.order.accession_number}
            )
        elif action == "merge_link":
            if not has_permission(request.user, "imaging.merge"):
                raise Http404
            procedure = _scheduling_procedure(request.POST["procedure"])
            services.reconciliation_merge_and_link(
                study=item.study, procedure=procedure, actor=request.user, request=request
            )
            messages.success(request, _("Temporary registration merged and study linked."))
        elif action == "dismiss":
            services.reconciliation_dismiss(
                item=item, actor=request.user, resolution=request.POST.get("resolution", ""), request=request
            )
            messages.success(request, _("Item closed."))
        else:
            return HttpResponse(status=400)
    except (ApplicationError, ValueError, KeyError) as exc:
        messages.error(request, getattr(exc, "message", None) or _("Invalid request."))
        return redirect(back)
    return redirect("imaging:study_detail", pk=item.study_id)


@role_required("imaging.view")
def study_list(request):
    query = request.GET.get("q", "").strip()[:64]
    studies = list(selectors.study_list(query=query)[:100])
    audit_record(
        action="study.list",
        request=request,
        object_type="study",
        detail={"query": bool(query), "n": len(studies)},
    )
    return render(request, "imaging/study_list.html", {"studies": studies, "query": query})


@role_required("imaging.view")
def study_detail(request, pk: int):
    try:
        study = selectors.study_get(pk=pk)
    except Study.DoesNotExist as exc:
        raise Http404 from exc
    series = list(study.series.all())
    conflicts = list(selectors.study_conflicts(study=study))
    open_item = study.reconciliation_items.filter(resolved_at__isnull=True).first()
    audit_record(
        action="study.view",
        request=request,
        object_type="study",
        object_id=study.pk,
        patient_id=study.patient_id,
    )
    return render(
        request,
        "imaging/study_detail.html",
        {
            "study": study,
            "series": series,
            "conflicts": conflicts,
            "open_item": open_item,
            "links": list(study.links.all()),
            "can_reconcile": has_permission(request.user, "imaging.reconcile"),
        },
    )


@role_required("imaging.reconcile")
@require_POST
def study_unlink(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    try:
        services.study_unlink(
            study=study, actor=request.user, reason=request.POST.get("reason", ""), request=request
        )
        messages.success(request, _("Study unlinked; it is back in the reconciliation queue."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("imaging:study_detail", pk=pk)


@role_required("imaging.reconcile")
@require_POST
def conflict_resolve(request, pk: int):
    conflict = get_object_or_404(DuplicateConflict, pk=pk)
    try:
        services.conflict_resolve(conflict=conflict, actor=request.user, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(request.POST.get("next") or reverse("imaging:reconciliation"))


@role_required("imaging.reconcile")
@require_POST
def received_retry(request, pk: int):
    """Retry the ingest of a ``dead`` object (workbench button)."""
    obj = get_object_or_404(ReceivedObject, pk=pk)
    try:
        services.received_object_retry(received_object=obj, actor=request.user, request=request)
        messages.success(request, _("The object is queued for ingest again."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("imaging:reconciliation"))


@role_required("imaging.view")
def thumbnail(request, pk: int):
    """A cached thumbnail; never rendered on the request path (a placeholder until ready)."""
    instance = get_object_or_404(Instance, pk=pk)
    path = previews.thumbnail_path(instance.pk)
    if path.exists():
        response = FileResponse(path.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    if not app.conf.task_always_eager:
        # A worker renders it; without a broker the ingest already did, so never render here.
        services._send_previews(instance.series.study_id)
    img = previews.placeholder(_("Rendering…"))
    response = HttpResponse(previews.encode(img), content_type="image/jpeg")
    response["Cache-Control"] = "no-store"
    return response
