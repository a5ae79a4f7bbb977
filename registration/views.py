"""Front-desk pages for patients: search, registration, detail, edit.

Thin adapters: forms validate, services write, selectors read. Every response that shows
patient data writes exactly one audit event (writes are audited by the services, and a
successful write answers with a redirect, so nothing is counted twice).
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Min
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import audit_record
from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission
from scheduling.selectors import procedure_list_for
from scheduling.services import allowed_actions

from .forms import FIELD_ALIASES, PatientForm, PatientSearchForm, apply_service_errors
from .models import Patient
from .names import has_han, romanise_name, split_chinese_name
from .selectors import patient_find_duplicates, patient_list, patient_search
from .services import normalise_name_fields, patient_register, patient_update

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 50


def audit_patient_view(request, patient: Patient, **detail) -> None:
    audit_record(
        action="patient.view",
        request=request,
        object_type="patient",
        object_id=patient.pk,
        patient_id=patient.pk,
        detail=detail or None,
    )


@never_cache
@require_GET
@role_required("patient.view")
def patient_search_view(request):
    form = PatientSearchForm(request.GET or None)
    patients: list[Patient] = []
    searched = False
    if form.has_criteria():
        searched = True
        q = form.cleaned_data["q"].strip()
        birth = form.cleaned_data["birth_date"]
        patients = list(patient_search(query=q, birth_date=birth)[: SEARCH_LIMIT + 1])
        audit_record(
            action="patient.search",
            request=request,
            object_type="patient",
            detail={
                "query": q,
                "birth_date": birth.isoformat() if birth else "",
                "results": [p.pk for p in patients[:SEARCH_LIMIT]],
            },
        )
    context = {
        "form": form,
        "patients": patients[:SEARCH_LIMIT],
        "more": len(patients) > SEARCH_LIMIT,
        "searched": searched,
        "can_register": has_permission(request.user, "patient.create"),
        "can_order": has_permission(request.user, "order.create"),
        "register_hint": form.cleaned_data.get("q", "").strip() if form.is_bound and form.is_valid() else "",
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "registration/_search_results.html" if partial else "registration/patient_search.html"
    return render(request, template, context)


@require_GET
@role_required("patient.view")
def pinyin_preview(request):
    """htmx: the pinyin for a Chinese name, filled into the family/given fields.

    Fields the user has typed over are kept: a field is replaced only when it is empty or
    still holds the value this endpoint filled in last time (``auto_family``/``auto_given``).
    """
    chinese = "".join(request.GET.get("chinese_name", "").split())[:32]
    family = request.GET.get("family_name", "")
    given = request.GET.get("given_name", "")
    auto_family = request.GET.get("auto_family", "")
    auto_given = request.GET.get("auto_given", "")
    ideo_family, ideo_given = split_chinese_name(chinese) if has_han(chinese) else ("", "")
    py_family, py_given = romanise_name(ideo_family, ideo_given) if ideo_family else ("", "")
    if ideo_family:
        if not family or family == auto_family:
            family = py_family
        if not given or given == auto_given:
            given = py_given
    form = PatientForm(initial={"family_name": family, "given_name": given})
    return render(
        request,
        "registration/_name_fields.html",
        {
            "form": form,
            "family_value": family,
            "given_value": given,
            "auto_family": py_family,
            "auto_given": py_given,
            "ideo_family": ideo_family,
            "ideo_given": ideo_given,
        },
    )


def _duplicates_for(form: PatientForm):
    fields = normalise_name_fields(
        {
            k: form.service_fields()[k]
            for k in ("family_name", "given_name", "ideographic_family", "ideographic_given")
        }
    )
    return list(
        patient_find_duplicates(
            family_name=fields.get("family_name", ""),
            given_name=fields.get("given_name", ""),
            ideographic_family=fields.get("ideographic_family", ""),
            ideographic_given=fields.get("ideographic_given", ""),
            birth_date=form.cleaned_data.get("birth_date"),
        )[:10]
    )


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("patient.create")
def patient_register_view(request):
    duplicates: list[Patient] = []
    if request.method == "POST":
        form = PatientForm(request.POST)
        if form.is_valid():
            duplicates = _duplicates_for(form)
            if duplicates and not form.cleaned_data.get("confirm_duplicate"):
                audit_record(
                    action="patient.search",
                    request=request,
                    object_type="patient",
                    detail={"duplicate_check": [p.pk for p in duplicates]},
                )
                form.add_error(
                    None,
                    _(
                        "A patient with the same name and birth date is already registered. Open it, or confirm that this is a different person."
                    ),
                )
            else:
                try:
                    patient = patient_register(actor=request.user, request=request, **form.service_fields())
                except (ApplicationError, ValidationError) as exc:
                    apply_service_errors(form, exc, aliases=FIELD_ALIASES)
                else:
                    messages.success(
                        request,
                        _("Registered %(name)s with ID %(id)s.")
                        % {"name": patient.display_name, "id": patient.patient_id},
                    )
                    return redirect("registration:patient_detail", pk=patient.pk)
    else:
        initial = {}
        hint = request.GET.get("q", "").strip()[:32]
        if hint:
            if has_han(hint):
                initial["chinese_name"] = "".join(hint.split())
                initial["family_name"], initial["given_name"] = romanise_name(*split_chinese_name(hint))
            elif not any(ch.isdigit() for ch in hint):
                parts = hint.split(None, 1)
                initial["family_name"] = parts[0].capitalize()
                initial["given_name"] = parts[1].title().replace(" ", "") if len(parts) > 1 else ""
        form = PatientForm(initial=initial)
    return render(
        request,
        "registration/patient_form.html",
        {"form": form, "duplicates": duplicates, "editing": False, **_name_context(form)},
    )


def _name_context(form: PatientForm) -> dict:
    """Values for the name-fields partial on a full page render."""
    if form.is_bound:
        family, given = form.data.get("family_name", ""), form.data.get("given_name", "")
        auto_family, auto_given = form.data.get("auto_family", ""), form.data.get("auto_given", "")
        chinese = form.data.get("chinese_name", "")
    else:
        family = form.initial.get("family_name", "")
        given = form.initial.get("given_name", "")
        chinese = form.initial.get("chinese_name", "")
        auto_family, auto_given = (
            romanise_name(*split_chinese_name(chinese)) if has_han(chinese) else ("", "")
        )
        if (family, given) != (auto_family, auto_given):
            auto_family = auto_given = ""
    ideo_family, ideo_given = split_chinese_name(chinese) if has_han(chinese) else ("", "")
    return {
        "family_value": family,
        "given_value": given,
        "auto_family": auto_family,
        "auto_given": auto_given,
        "ideo_family": ideo_family,
        "ideo_given": ideo_given,
    }


@never_cache
@require_GET
@role_required("patient.view")
def patient_detail_view(request, pk: int):
    patient = get_object_or_404(Patient.objects.select_related("merged_into"), pk=pk)
    procedures = list(
        procedure_list_for(request.user)
        .filter(order__patient=patient)
        .annotate(first_start=Min("steps__start"))
        .order_by("-first_start", "-id")
    )
    user = request.user
    can = {
        "arrive": has_permission(user, "procedure.arrive"),
        "cancel": has_permission(user, "procedure.cancel"),
        "reschedule": has_permission(user, "procedure.reschedule"),
    }
    for proc in procedures:
        steps = list(proc.steps.all())
        proc.step = steps[-1] if steps else None
        proc.actions = [a for a in allowed_actions(proc.status) if can.get(a)]
    audit_patient_view(request, patient)
    return render(
        request,
        "registration/patient_detail.html",
        {
            "patient": patient,
            "procedures": procedures,
            "can_order": has_permission(user, "order.create") and not patient.merged_into_id,
            "can_edit": has_permission(user, "patient.update") and not patient.merged_into_id,
        },
    )


_SEEN_SALT = "registration.patient_edit.seen"


def _shown_values(patient) -> dict[str, str]:
    """The edit form's values as a person reads them (for "what changed meanwhile")."""
    values = PatientForm.initial_for(patient)
    values["birth_date"] = patient.birth_date.isoformat() if patient.birth_date else ""
    values["sex"] = str(patient.get_sex_display() or "")
    values["pregnancy_status"] = str(patient.get_pregnancy_status_display() or "")
    values["is_temporary"] = str(_("Yes") if patient.is_temporary else _("No"))
    return {k: str(v or "") for k, v in values.items()}


def _changed_meanwhile(request, patient, form) -> list[tuple[str, str, str, str]]:
    """(field, when you opened the form, saved now by someone else, your entry) per field the
    other user changed; empty when the snapshot in the form cannot be read."""
    from django.core import signing

    try:
        seen = signing.loads(request.POST.get("seen", ""), salt=_SEEN_SALT)
    except signing.BadSignature:
        return []
    now = _shown_values(patient)
    out = []
    for name, value in now.items():
        if seen.get(name, "") != value:
            field = form.fields.get(name)
            yours = request.POST.get(name, "")
            if isinstance(field, forms.BooleanField):
                yours = str(_("Yes") if yours else _("No"))
            elif field is not None and hasattr(field, "choices") and yours:
                yours = str({str(k): v for k, v in field.choices}.get(yours, yours))
            out.append((str(field.label if field else name), seen.get(name, ""), value, yours))
    return out


@never_cache
@require_http_methods(["GET", "POST"])
@role_required("patient.update")
def patient_edit_view(request, pk: int):
    from django.core import signing

    from audit.models import AuditEvent

    patient = get_object_or_404(patient_list(), pk=pk)
    version = patient.updated_at.isoformat()
    changes, changed_by = [], None
    if request.method == "POST":
        form = PatientForm(request.POST, editing=True)
        if form.is_valid() and request.POST.get("version") != version:
            # Someone else saved this patient after the form was opened: do not overwrite
            # silently. The input stays, the other person's changes are shown; saving again
            # (with the new version) is a conscious choice.
            form.add_error(
                None,
                _(
                    "Someone else changed this patient while you were editing. Check the values below and save again."
                ),
            )
            changes = _changed_meanwhile(request, patient, form)
            changed_by = (
                AuditEvent.objects.filter(
                    action="patient.update", object_type="patient", object_id=str(patient.pk)
                )
                .order_by("-at", "-id")
                .first()
            )
        elif form.is_valid():
            try:
                patient_update(patient=patient, actor=request.user, request=request, **form.service_fields())
            except (ApplicationError, ValidationError) as exc:
                patient.refresh_from_db()
                apply_service_errors(form, exc, aliases=FIELD_ALIASES)
            else:
                messages.success(request, _("Changes saved."))
                return redirect("registration:patient_detail", pk=patient.pk)
    else:
        form = PatientForm(initial=PatientForm.initial_for(patient), editing=True)
    audit_patient_view(request, patient, purpose="edit")
    return render(
        request,
        "registration/patient_form.html",
        {
            "form": form,
            "patient": patient,
            "editing": True,
            "version": version,
            "seen": signing.dumps(_shown_values(patient), salt=_SEEN_SALT),
            "changes": changes,
            "changed_by": changed_by,
            **_name_context(form),
        },
    )
