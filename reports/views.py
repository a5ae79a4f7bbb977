"""Pages for reading, reviewing, releasing and searching reports (thin adapters over services)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_record
from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission
from scheduling.models import RequestedProcedure

from . import selectors, services
from .forms import (
    AddendumForm,
    CriticalAckForm,
    CriticalFlagForm,
    CriticalNotifyForm,
    EditorForm,
    PeerScoreForm,
    ReleaseForm,
    ReturnForm,
    SearchForm,
    SignForm,
    WorklistFilterForm,
)
from .models import (
    SIGNED_STATUSES,
    CriticalResult,
    PeerReview,
    Report,
    ReportSnippet,
    ReportStatus,
    ReportTemplate,
)
from .pdf import render_report_pdf

S = ReportStatus


def _audit_view(request, report: Report, action: str = "report.view") -> None:
    audit_record(
        action=action,
        request=request,
        object_type="report",
        object_id=report.pk,
        patient_id=report.requested_procedure.order.patient_id,
    )


def _error(request, exc: ApplicationError) -> None:
    """The message and the field messages, in words (no internal field names)."""
    parts = [str(exc.message)]
    for errors in exc.fields.values():
        parts += [str(e) for e in errors if str(e) not in parts]
    messages.error(request, " ".join(parts))


def _report_or_404(request, pk: int) -> Report:
    try:
        report = selectors.report_get(pk=pk)
    except Report.DoesNotExist as exc:
        raise Http404 from exc
    if not selectors.report_list_for(request.user).filter(pk=pk).exists():
        raise PermissionDenied
    return report


# ---------------------------------------------------------------------------------------
# Reading worklist


@role_required("report.write")
@require_GET
def reading_worklist(request):
    form = WorklistFilterForm(request.GET or None)
    filters = form.to_filters() if request.GET else WorklistFilterForm({}).to_filters()
    per_page = int(getattr(settings, "RIS_READING_WORKLIST_PAGE_SIZE", selectors.READING_WORKLIST_PAGE_SIZE))
    page, counts = selectors.reading_worklist_page(
        user=request.user, filters=filters, page=request.GET.get("page"), per_page=max(1, per_page)
    )
    rows = list(page.object_list)
    audit_record(
        action="report.worklist",
        request=request,
        object_type="worklist",
        detail={
            "filters": {k: v for k, v in request.GET.items() if v and k != "page"},
            "rows": len(rows),
            "page": page.number,
            "total": page.paginator.count,
        },
    )
    params = request.GET.copy()
    params.pop("quick", None)
    params.pop("page", None)
    page_params = request.GET.copy()
    page_params.pop("page", None)
    ctx = {
        "form": form if request.GET else WorklistFilterForm(),
        "rows": rows,
        "page": page,
        "page_query": page_params.urlencode(),
        "counts": counts,
        "quick": filters.quick,
        "quick_filters": [
            ("all", _("All")),
            ("unread", _("Unread")),
            ("my_drafts", _("My drafts")),
            ("returned", _("Returned to me")),
            ("preliminary", _("Awaiting review")),
            ("stat", _("STAT")),
        ],
        "base_query": params.urlencode(),
        "now": timezone.now(),
        "refresh_seconds": max(2, int(getattr(settings, "RIS_READING_WORKLIST_REFRESH_SECONDS", 30))),
    }
    template = "reports/_worklist_rows.html" if request.htmx else "reports/reading_worklist.html"
    return render(request, template, ctx)


@role_required("report.write")
@require_POST
def claim(request, procedure_pk: int):
    procedure = get_object_or_404(RequestedProcedure, pk=procedure_pk)
    try:
        report = services.report_claim(procedure=procedure, actor=request.user, request=request)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("reports:reading_worklist")
    return redirect("reports:edit", pk=report.pk)


@role_required("report.write")
@require_POST
def claim_next(request):
    filters = WorklistFilterForm(request.POST).to_filters()
    proc = selectors.next_to_read(user=request.user, filters=filters)
    if proc is None:
        messages.info(request, _("Nothing left to read."))
        return redirect("reports:reading_worklist")
    return claim(request, proc.pk)


@role_required("report.write")
@require_POST
def unclaim(request, pk: int):
    report = _report_or_404(request, pk)
    services.report_unclaim(report=report, actor=request.user, request=request)
    return redirect("reports:reading_worklist")


@role_required("report.override_lock")
@require_GET
def claims(request):
    """Department head: who is writing what, and since when; free the claims of absent readers."""
    reports = list(selectors.claimed_reports())
    audit_record(
        action="report.claims", request=request, object_type="worklist", detail={"rows": len(reports)}
    )
    return render(request, "reports/claims.html", {"reports": reports, "now": timezone.now()})


@role_required("report.override_lock")
@require_POST
def break_lock(request, pk: int):
    report = _report_or_404(request, pk)
    try:
        services.report_break_lock(report=report, actor=request.user, request=request)
        messages.success(request, _("The claim was released."))
    except ApplicationError as exc:
        _error(request, exc)
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("reports:detail", pk=pk)


# ---------------------------------------------------------------------------------------
# Editor


def _context_for_exam(report: Report) -> dict:
    proc = report.requested_procedure
    return {
        "report": report,
        "proc": proc,
        "order": proc.order,
        "patient": proc.order.patient,
        "priors": selectors.prior_exams(procedure=proc),
        "viewer_url": selectors.viewer_url(proc),
        "preview": selectors.imaging_preview(proc),
        "critical_results": list(report.critical_results.all()),
        "critical_form": CriticalFlagForm(),
    }


@role_required("report.write")
def edit(request, pk: int):
    report = _report_or_404(request, pk)
    if report.status != S.DRAFT:
        return redirect("reports:review" if report.status == S.PRELIMINARY else "reports:detail", pk=pk)
    mine = (
        report.locked_by_id == request.user.pk
        and report.locked_until
        and report.locked_until > timezone.now()
    )
    if request.method == "POST":
        form = EditorForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                if "submit" in request.POST:
                    services.report_submit(
                        report=report,
                        actor=request.user,
                        findings=d["findings"],
                        impression=d["impression"],
                        expected_revision=d["revision"],
                        request=request,
                    )
                    messages.success(request, _("Submitted for review."))
                    if request.GET.get("next"):
                        return claim_next(request)
                    return redirect("reports:reading_worklist")
                tpl = None
                if request.POST.get("template"):
                    tpl = ReportTemplate.objects.filter(pk=request.POST["template"], active=True).first()
                services.report_save_draft(
                    report=report,
                    actor=request.user,
                    findings=d["findings"],
                    impression=d["impression"],
                    expected_revision=d["revision"],
                    template=tpl,
                    request=request,
                )
                messages.success(request, _("Draft saved."))
                return redirect("reports:edit", pk=pk)
            except ApplicationError as exc:
                _error(request, exc)
                report.refresh_from_db()
    else:
        if not mine:
            try:
                report = services.report_claim(
                    procedure=report.requested_procedure, actor=request.user, request=request
                )
                report = selectors.report_get(pk=pk)
            except ApplicationError as exc:
                _error(request, exc)
        _audit_view(request, report)
        form = EditorForm(
            initial={
                "findings": report.findings,
                "impression": report.impression,
                "revision": report.revision,
            }
        )
    modality = report.requested_procedure.procedure_type.modality
    ctx = _context_for_exam(report)
    ctx.update(
        {
            "form": form,
            "mine": report.locked_by_id == request.user.pk,
            "templates": ReportTemplate.objects.filter(active=True, modality__in=[modality, ""]).order_by(
                "name"
            ),
            "snippets": ReportSnippet.objects.filter(active=True, modality__in=[modality, ""]),
        }
    )
    return render(request, "reports/edit.html", ctx)


@role_required("report.write")
@require_POST
def autosave(request, pk: int):
    """htmx autosave: saves a version when the text changed; answers with the new revision."""
    report = _report_or_404(request, pk)
    form = EditorForm(request.POST)
    saved, message = False, ""
    if form.is_valid():
        d = form.cleaned_data
        try:
            report = services.report_save_draft(
                report=report,
                actor=request.user,
                findings=d["findings"],
                impression=d["impression"],
                expected_revision=d["revision"],
                request=request,
                autosave=True,
            )
            message = _("Saved %(time)s") % {"time": timezone.localtime().strftime("%H:%M:%S")}
            saved = True
        except ApplicationError as exc:
            message = exc.message
            report.refresh_from_db()
    response = render(request, "reports/_autosave.html", {"report": report, "message": message, "ok": saved})
    if saved:
        response["X-Saved"] = "1"  # the page's unsaved-edits guard marks the sent text as saved
    return response


# ---------------------------------------------------------------------------------------
# Review


@role_required("report.sign")
@require_GET
def review_queue(request):
    reports = list(selectors.review_queue()[:200])
    audit_record(
        action="report.review_queue", request=request, object_type="worklist", detail={"rows": len(reports)}
    )
    return render(request, "reports/review_queue.html", {"reports": reports})


@role_required("report.view")
def review(request, pk: int):
    report = _report_or_404(request, pk)
    if report.status != S.PRELIMINARY:
        return redirect("reports:detail", pk=pk)
    can_sign = has_permission(request.user, "report.sign")
    editor = EditorForm(
        initial={"findings": report.findings, "impression": report.impression, "revision": report.revision}
    )
    sign_form, return_form = SignForm(initial={"revision": report.revision}), ReturnForm()
    if request.method == "POST":
        if not can_sign:
            raise PermissionDenied
        action = request.POST.get("action")
        try:
            if action == "edit":
                editor = EditorForm(request.POST)
                if editor.is_valid():
                    d = editor.cleaned_data
                    services.report_review_edit(
                        report=report,
                        actor=request.user,
                        findings=d["findings"],
                        impression=d["impression"],
                        expected_revision=d["revision"],
                        request=request,
                    )
                    messages.success(request, _("Your edits were saved; the difference is shown below."))
                    return redirect("reports:review", pk=pk)
            elif action == "sign":
                # One form: what is on the screen is what is signed (edits are saved with it).
                sign_form, editor = SignForm(request.POST), EditorForm(request.POST)
                if sign_form.is_valid() and editor.is_valid():
                    d = editor.cleaned_data
                    on_screen = (
                        (d["findings"], d["impression"])
                        if "findings" in request.POST
                        else (report.findings, report.impression)
                    )
                    edited = on_screen != (report.findings, report.impression)
                    services.report_review_edit_and_sign(
                        report=report,
                        actor=request.user,
                        findings=on_screen[0],
                        impression=on_screen[1],
                        password=sign_form.cleaned_data["password"],
                        expected_revision=sign_form.cleaned_data["revision"],
                        request=request,
                    )
                    messages.success(
                        request,
                        _("Report signed with your edits; the changes are shown below.")
                        if edited
                        else _("Report signed."),
                    )
                    target = reverse("reports:detail", kwargs={"pk": pk})
                    return redirect(f"{target}?changes=1" if edited else target)
            elif action == "return":
                return_form = ReturnForm(request.POST)
                if return_form.is_valid():
                    services.report_return(
                        report=report,
                        actor=request.user,
                        comment=return_form.cleaned_data["comment"],
                        request=request,
                    )
                    messages.success(request, _("Returned to the author."))
                    return redirect("reports:review_queue")
        except ApplicationError as exc:
            _error(request, exc)
            report = selectors.report_get(pk=pk)
            if report.status != S.PRELIMINARY:
                return redirect("reports:detail", pk=pk)
    else:
        _audit_view(request, report)
    submitted = selectors.submitted_version(report)
    ctx = _context_for_exam(report)
    ctx.update(
        {
            "editor": editor,
            "sign_form": sign_form,
            "return_form": return_form,
            "can_sign": can_sign,
            "submitted": submitted,
            "diff_findings": selectors.text_diff(submitted.findings, report.findings) if submitted else [],
            "diff_impression": selectors.text_diff(submitted.impression, report.impression)
            if submitted
            else [],
            "edited": bool(submitted)
            and (submitted.findings, submitted.impression) != (report.findings, report.impression),
        }
    )
    return render(request, "reports/review.html", ctx)


# ---------------------------------------------------------------------------------------
# Signed report, addenda, release


@role_required("report.view")
@require_GET
def detail(request, pk: int):
    report = _report_or_404(request, pk)
    _audit_view(request, report)
    final = selectors.final_version(report)
    submitted = selectors.submitted_version(report)
    signatures = list(
        report.signatures.select_related(
            "version__report__requested_procedure__order", "addendum__report__requested_procedure__order"
        )
    )
    ctx = _context_for_exam(report)
    ctx.update(
        {
            "final": final,
            "addenda": list(report.addenda.select_related("author").prefetch_related("signatures")),
            "signatures": [(s, services.signature_verify(s)) for s in signatures],
            "events": list(report.events.select_related("actor")),
            "releases": list(report.releases.select_related("actor")),
            "release_form": ReleaseForm(),
            "addendum_form": AddendumForm(),
            "can_release": has_permission(request.user, "report.release") and report.is_signed,
            "can_addend": has_permission(request.user, "report.sign") and report.is_signed,
            "can_break_lock": has_permission(request.user, "report.override_lock") and report.locked_by_id,
            "reviewer_edited": bool(final and submitted)
            and (final.findings, final.impression) != (submitted.findings, submitted.impression),
            "diff_findings": selectors.text_diff(submitted.findings, final.findings)
            if final and submitted
            else [],
            "diff_impression": selectors.text_diff(submitted.impression, final.impression)
            if final and submitted
            else [],
        }
    )
    return render(request, "reports/detail.html", ctx)


@role_required("report.sign")
@require_POST
def addendum(request, pk: int):
    report = _report_or_404(request, pk)
    form = AddendumForm(request.POST)
    if form.is_valid():
        try:
            services.report_add_addendum(
                report=report,
                actor=request.user,
                text=form.cleaned_data["text"],
                password=form.cleaned_data["password"],
                request=request,
            )
            messages.success(request, _("Addendum signed."))
        except ApplicationError as exc:
            _error(request, exc)
    else:
        messages.error(request, _("Write the addendum text."))
    return redirect("reports:detail", pk=pk)


@role_required("report.release")
@require_GET
def pdf(request, pk: int):
    report = _report_or_404(request, pk)
    if report.status not in SIGNED_STATUSES:
        raise Http404
    try:
        services.report_release(report=report, actor=request.user, kind="download", request=request)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("reports:detail", pk=pk)
    data = render_report_pdf(report, base_url=request.build_absolute_uri("/"))
    response = HttpResponse(data, content_type="application/pdf")
    name = f"report-{report.requested_procedure.order.accession_number}.pdf"
    disposition = "inline" if request.GET.get("inline") else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@role_required("report.release")
@require_POST
def release(request, pk: int):
    report = _report_or_404(request, pk)
    form = ReleaseForm(request.POST)
    if form.is_valid():
        try:
            services.report_release(
                report=report,
                actor=request.user,
                kind=form.cleaned_data["kind"],
                recipient=form.cleaned_data["recipient"],
                copies=form.cleaned_data["copies"],
                request=request,
            )
            messages.success(request, _("Release recorded."))
        except ApplicationError as exc:
            _error(request, exc)
    else:
        messages.error(request, _("Check the release form."))
    return redirect("reports:detail", pk=pk)


@require_GET
def verify(request, code: str):
    """Public check of a printed verification code: no patient data, only what was signed when."""
    report = Report.objects.filter(verification_code=code.strip().upper()).first() if code else None
    ctx = {"code": code, "report": report}
    if report is not None:
        final = selectors.final_version(report)
        ctx.update({"final": final, "addenda_count": report.addenda.count()})
    audit_record(
        action="report.verify",
        request=request,
        object_type="report",
        object_id=report.pk if report else "",
        outcome="success" if report else "failure",
    )
    return render(request, "reports/verify.html", ctx, status=200 if report else 404)


# ---------------------------------------------------------------------------------------
# Search


@role_required("report.view")
@require_GET
def search(request):
    form = SearchForm(request.GET or None)
    q = form.cleaned_data["q"] if form.is_valid() else ""
    if q:
        results = list(selectors.report_search(user=request.user, q=q))
    else:  # the release desk's start page: the latest signed reports
        results = list(selectors.recently_signed(user=request.user))
    audit_record(
        action="report.search",
        request=request,
        object_type="report",
        detail={"query": q, "results": len(results)} if q else {"recent": True, "results": len(results)},
    )
    return render(request, "reports/search.html", {"form": form, "q": q, "results": results})


# ---------------------------------------------------------------------------------------
# Critical results


@role_required("report.write")
@require_POST
def critical_flag(request, pk: int):
    report = _report_or_404(request, pk)
    form = CriticalFlagForm(request.POST)
    if form.is_valid():
        try:
            services.critical_result_flag(
                report=report, actor=request.user, request=request, **form.cleaned_data
            )
            messages.success(request, _("Critical result flagged: notify the clinician."))
        except ApplicationError as exc:
            _error(request, exc)
    else:
        messages.error(request, _("Choose a category and describe the finding."))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("reports:detail", args=[pk])
    return redirect(target)


@role_required("critical.view")
def critical_list(request):
    overdue_only = request.GET.get("overdue") == "1"
    items = list(selectors.critical_results(overdue_only=overdue_only)[:300])
    audit_record(
        action="critical.list",
        request=request,
        object_type="critical_result",
        detail={"overdue": overdue_only, "rows": len(items)},
    )
    return render(
        request,
        "reports/critical_list.html",
        {
            "items": items,
            "overdue_only": overdue_only,
            "now": timezone.now(),
            "notify_form": CriticalNotifyForm(),
            "ack_form": CriticalAckForm(),
        },
    )


@role_required("report.write")
@require_POST
def critical_notify(request, pk: int):
    critical = get_object_or_404(CriticalResult, pk=pk)
    form = CriticalNotifyForm(request.POST)
    if form.is_valid():
        try:
            services.critical_result_notify(
                critical=critical, actor=request.user, request=request, **form.cleaned_data
            )
            messages.success(request, _("Notification recorded."))
        except ApplicationError as exc:
            _error(request, exc)
    else:
        messages.error(request, _("Say who was notified and how."))
    return redirect("reports:critical_list")


@role_required("report.write")
@require_POST
def critical_acknowledge(request, pk: int):
    critical = get_object_or_404(CriticalResult, pk=pk)
    form = CriticalAckForm(request.POST)
    if form.is_valid():
        try:
            services.critical_result_acknowledge(
                critical=critical, actor=request.user, request=request, **form.cleaned_data
            )
            messages.success(request, _("Acknowledgement recorded."))
        except ApplicationError as exc:
            _error(request, exc)
    else:
        messages.error(request, _("Say who acknowledged."))
    return redirect("reports:critical_list")


# ---------------------------------------------------------------------------------------
# Peer review


@role_required("peer_review.score")
@require_GET
def peer_review_list(request):
    return render(
        request,
        "reports/peer_review_list.html",
        {"reviews": list(selectors.peer_reviews_for(request.user)[:200])},
    )


@role_required("peer_review.score")
def peer_review_score(request, pk: int):
    review = get_object_or_404(
        PeerReview.objects.select_related(
            "report__requested_procedure__order__patient", "report__requested_procedure__procedure_type"
        ),
        pk=pk,
    )
    if review.reviewer_id != request.user.pk:
        raise PermissionDenied
    form = PeerScoreForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.peer_review_score(
                review=review, actor=request.user, request=request, **form.cleaned_data
            )
            messages.success(request, _("Score recorded."))
            return redirect("reports:peer_review_list")
        except ApplicationError as exc:
            _error(request, exc)
    else:
        _audit_view(request, review.report, "peer_review.view")
    final = selectors.final_version(review.report)
    return render(
        request,
        "reports/peer_review_score.html",
        {"review": review, "final": final, "form": form, "proc": review.report.requested_procedure},
    )


@role_required("peer_review.results")
@require_GET
def peer_review_results(request):
    audit_record(action="peer_review.results", request=request, object_type="peer_review")
    return render(request, "reports/peer_review_results.html", {"rows": selectors.peer_review_results()})
