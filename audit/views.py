"""The audit viewer (举证): search who did what to which patient's data, and when.

Only the department head and the administrator may read it, and every search is itself an
audit event (``audit.search``), so reading the evidence leaves evidence.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, time, timedelta

from django import forms
from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from registration.models import Patient
from ris.permissions import role_required

from .models import Outcome
from .selectors import audit_event_list
from .services import audit_record

PAGE_SIZE = 50


class AuditSearchForm(forms.Form):
    patient = forms.CharField(
        label=_("Patient ID"), required=False, max_length=64, help_text=_("The patient's ID (MRN).")
    )
    user = forms.CharField(label=_("User"), required=False, max_length=150)
    action = forms.CharField(
        label=_("Action"), required=False, max_length=64, help_text=_("Prefix, e.g. patient. or report.sign")
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"), required=False, choices=[("", _("Any")), *Outcome.choices]
    )
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", _("The end date is before the start date."))
        return data

    def filters(self) -> dict:
        """Keyword arguments for ``audit_event_list`` (dates are whole local days)."""
        data = self.cleaned_data
        tz = timezone.get_current_timezone()
        out: dict = {
            "actor": data.get("user", "").strip(),
            "action": data.get("action", "").strip(),
            "outcome": data.get("outcome", ""),
        }
        if data.get("since"):
            out["since"] = datetime.combine(data["since"], time.min, tzinfo=tz)
        if data.get("until"):
            out["until"] = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=tz)
        patient = data.get("patient", "").strip()
        if patient:
            out["patient_ids"] = patient_refs(patient)
        return out


def patient_refs(patient_id: str) -> list[int]:
    """Internal keys of the patients with this ID (any issuer). Unknown IDs match nothing."""
    return list(Patient.objects.filter(patient_id=patient_id).values_list("pk", flat=True))


def search_detail(raw: dict) -> dict:
    """What was searched, for the audit event of the search itself."""
    return {"query": {k: v for k, v in raw.items() if v not in ("", None) and k != "page"}}


class Page:
    """Offset pagination without COUNT(*): the audit table grows without bound."""

    def __init__(self, qs, number: int):
        self.number = max(1, number)
        start = (self.number - 1) * PAGE_SIZE
        rows = list(qs[start : start + PAGE_SIZE + 1])
        self.has_next = len(rows) > PAGE_SIZE
        self.object_list = rows[:PAGE_SIZE]
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1


def _page_number(raw) -> int:
    try:
        return min(max(int(raw), 1), 10_000)
    except (TypeError, ValueError):
        return 1


def _search(params) -> tuple[AuditSearchForm, dict | None]:
    """The form and the selector's filters (None when the form is invalid); no filter = all."""
    form = AuditSearchForm(params or None)
    if not form.is_bound:
        return form, {}
    return form, (form.filters() if form.is_valid() else None)


@require_GET
@role_required("audit.view")
def event_list(request):
    params = request.GET.copy()
    number = _page_number(params.pop("page", ["1"])[-1])
    form, filters = _search(params)
    page = None
    if filters is not None:
        page = Page(audit_event_list(**filters), number)
        # First visit (no filter) is still a read of the audit log.
        audit_record(
            action="audit.search",
            request=request,
            object_type="audit_event",
            patient_id=(filters.get("patient_ids") or [None])[0],
            detail=search_detail(params.dict()) | {"page": number, "shown": len(page.object_list)},
        )
        for e in page.object_list:
            e.detail_items = detail_items(e.detail)
    patients = _patient_labels(page.object_list) if page else {}
    return render(
        request,
        "audit/event_list.html",
        {"form": form, "page": page, "query": params.urlencode(), "patients": patients},
    )


def detail_items(detail) -> list[tuple[str, str]]:
    """An event's detail as readable "key: value" pairs (nested values as compact JSON)."""
    if not isinstance(detail, dict):
        return [("", _compact(detail))] if detail not in (None, "", [], {}) else []
    return [(str(k), v if isinstance(v, str) else _compact(v)) for k, v in detail.items()]


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


EXPORT_COLUMNS = [
    _("Time"),
    _("User"),
    _("Role"),
    _("Source IP"),
    _("Source AE"),
    _("Action"),
    _("Object type"),
    _("Object ID"),
    _("Patient"),
    _("Outcome"),
    _("Detail"),
]


class _Echo:
    def write(self, value):
        return value


@require_GET
@role_required("audit.view")
def event_export(request):
    """CSV of every event matching the filters (newest first, capped), UTF-8 with a BOM so that
    spreadsheet programs show Chinese correctly. The export is itself an audit event."""
    params = request.GET.copy()
    params.pop("page", None)
    form, filters = _search(params)
    if filters is None:
        return render(request, "audit/event_list.html", {"form": form, "page": None, "query": ""}, status=400)
    limit = int(getattr(settings, "RIS_AUDIT_EXPORT_MAX_ROWS", 100_000))
    qs = audit_event_list(**filters)
    rows = min(qs.count(), limit)
    audit_record(
        action="audit.export",
        request=request,
        object_type="audit_event",
        patient_id=(filters.get("patient_ids") or [None])[0],
        detail=search_detail(params.dict()) | {"rows": rows, "format": "csv"},
    )
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff" + writer.writerow([str(c) for c in EXPORT_COLUMNS])
        chunk: list = []
        for event in qs[:limit].iterator(chunk_size=2000):
            chunk.append(event)
            if len(chunk) == 2000:
                yield from _csv_rows(writer, chunk)
                chunk = []
        yield from _csv_rows(writer, chunk)

    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def _cell(value: str) -> str:
    """No spreadsheet formulas from logged input (CSV injection): a leading = + - @ is quoted."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_rows(writer, events):
    _patient_labels(events)
    for e in events:
        yield writer.writerow(
            _cell(str(v))
            for v in [
                timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M:%S"),
                e.actor_username,
                e.role,
                e.source_ip or "",
                e.source_ae,
                e.action,
                e.object_type,
                e.object_id,
                e.patient_label,
                e.get_outcome_display(),
                _compact(e.detail) if e.detail else "",
            ]
        )


def _patient_labels(events) -> dict[int, str]:
    """Patient ID (and issuer) for the events shown, in one query."""
    refs = {e.patient_ref for e in events if e.patient_ref}
    rows = Patient.objects.filter(pk__in=refs).values_list("pk", "patient_id", "issuer")
    labels = {pk: f"{pid} ({issuer})" for pk, pid, issuer in rows}
    for e in events:
        e.patient_label = labels.get(e.patient_ref, str(e.patient_ref or ""))
    return labels
