"""DiagnosticReport <- reports.Report (submitted or signed; drafts are never shown)."""

from __future__ import annotations

import base64
import hashlib
import logging

from django.db.models import Prefetch
from django.urls import reverse

from fhir.resources.R4B.diagnosticreport import DiagnosticReport as FhirDiagnosticReport
from imaging.models import Study
from reports.models import SIGNED_STATUSES, Addendum, Report, ReportStatus
from reports.selectors import report_list_for

from .. import systems
from ..search import Param, id_q, reference_q, token_choice_q
from .base import Context, ResourceType, clean, fhir_datetime, fhir_instant, meta, ref
from .servicerequest import procedure_code

logger = logging.getLogger(__name__)

R = ReportStatus
STATUS = {R.PRELIMINARY: "preliminary", R.FINAL: "final", R.AMENDED: "amended"}
STATUS_VALUESET = {
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
}
STATUS_REVERSE = {v: (k,) for k, v in STATUS.items()}

RAD = {"coding": [{"system": systems.V2_0074, "code": "RAD", "display": "Radiology"}]}
LOINC_IMAGING = {"system": systems.LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}


def _user_display(user) -> str:
    if user is None:
        return ""
    profile = getattr(user, "ris_profile", None)
    if profile is not None and profile.printed_name:
        return profile.printed_name
    return user.get_full_name() or user.get_username()


def report_text(report: Report) -> str:
    parts = []
    if report.findings:
        parts.append(f"Findings:\n{report.findings}")
    if report.impression:
        parts.append(f"Impression:\n{report.impression}")
    for addendum in report.addenda.all():
        parts.append(f"Addendum {addendum.number} ({fhir_datetime(addendum.created_at)}):\n{addendum.text}")
    return "\n\n".join(parts)


def _pdf(report: Report, ctx: Context) -> bytes | None:
    from reports.pdf import render_report_pdf
    from reports.selectors import report_get

    try:
        return render_report_pdf(report_get(pk=report.pk), base_url=ctx.site_url("/"))
    except Exception:  # a PDF failure must not hide the report; the url still serves it
        logger.exception("could not render the PDF of report %s for FHIR", report.pk)
        return None


class DiagnosticReportType(ResourceType):
    name = "DiagnosticReport"
    model = FhirDiagnosticReport
    read_action = "report.view"
    audit_object_type = "report"
    ordering = ("pk",)
    params = {
        "_id": Param("_id", "token", "Logical id of the report.", id_q()),
        "patient": Param(
            "patient",
            "reference",
            "The patient (Patient/<id>).",
            reference_q("requested_procedure__order__patient_id", "patient", "Patient"),
            target="Patient",
        ),
        "subject": Param(
            "subject",
            "reference",
            "Same as patient.",
            reference_q("requested_procedure__order__patient_id", "subject", "Patient"),
            target="Patient",
        ),
        "based-on": Param(
            "based-on",
            "reference",
            "The ServiceRequest reported on.",
            reference_q("requested_procedure_id", "based-on", "ServiceRequest"),
            target="ServiceRequest",
        ),
        "status": Param(
            "status",
            "token",
            "preliminary | final | amended (an addendum was signed).",
            token_choice_q("status", "status", STATUS_REVERSE, STATUS_VALUESET),
        ),
    }

    def queryset(self, user):
        return (
            report_list_for(user)
            .exclude(status=R.DRAFT)
            .select_related(
                "requested_procedure__procedure_type", "signed_by__ris_profile", "author__ris_profile"
            )
            .prefetch_related(
                Prefetch("addenda", queryset=Addendum.objects.order_by("number")),
                Prefetch(
                    "requested_procedure__studies",
                    queryset=Study.objects.order_by("id").only("id", "requested_procedure_id"),
                ),
            )
        )

    def patient_pk(self, obj):
        return obj.requested_procedure.order.patient_id

    def to_fhir(self, report: Report, ctx: Context) -> dict:
        proc = report.requested_procedure
        patient = proc.order.patient
        text = report_text(report)
        forms = []
        if report.status in SIGNED_STATUSES:
            pdf = {
                "contentType": "application/pdf",
                # The REST API's PDF (token auth; needs report.release; logged as a download).
                "url": ctx.site_url(reverse("report-pdf", args=[report.pk])),
                "title": f"Report {proc.order.accession_number}",
                "creation": fhir_datetime(report.amended_at or report.signed_at),
            }
            if ctx.detail:
                data = _pdf(report, ctx)
                if data:
                    pdf["data"] = base64.b64encode(data).decode()
                    pdf["size"] = len(data)
                    pdf["hash"] = base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 (FHIR Attachment.hash is SHA-1)
            forms.append(clean(pdf))
        if text:
            forms.append(
                {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode()).decode(),
                    "title": "Report text",
                }
            )
        interpreter = report.signed_by if report.status in SIGNED_STATUSES else report.author
        issued = report.amended_at or report.signed_at or report.submitted_at or report.updated_at
        return clean(
            {
                "resourceType": "DiagnosticReport",
                "id": str(report.pk),
                "meta": meta(report.updated_at),
                "basedOn": [ref("ServiceRequest", proc.pk)],
                "status": STATUS[report.status],
                "category": [RAD],
                "code": {
                    "coding": [LOINC_IMAGING, *procedure_code(proc.procedure_type)["coding"]],
                    "text": proc.procedure_type.code_meaning,
                },
                "subject": ref("Patient", patient.pk, patient.display_name),
                "effectiveDateTime": fhir_datetime(proc.started_at or proc.ended_at),
                "issued": fhir_instant(issued),
                "resultsInterpreter": [{"display": _user_display(interpreter)}] if interpreter else None,
                "imagingStudy": [ref("ImagingStudy", s.pk) for s in proc.studies.all()],
                "conclusion": report.impression,
                "presentedForm": forms,
            }
        )
