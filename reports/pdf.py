"""The signed report as PDF (WeasyPrint; Chinese text in Noto Sans CJK SC)."""

from __future__ import annotations

import logging
from urllib.parse import urljoin

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import selectors

logger = logging.getLogger(__name__)


def report_pdf_context(report, *, base_url: str | None = None) -> dict:
    proc = report.requested_procedure
    final = selectors.final_version(report)
    signature = final.signatures.first() if final else None
    addenda = list(report.addenda.prefetch_related("signatures"))
    return {
        "report": report,
        "proc": proc,
        "order": proc.order,
        "patient": proc.order.patient,
        "final": final,
        "signature": signature,
        "addenda": [(a, a.signatures.first()) for a in addenda],
        "institution": getattr(settings, "RIS_REPORT_INSTITUTION", "Department of Radiology"),
        "verify_path": urljoin(base_url or "", reverse("reports:verify", args=[report.verification_code])),
        "printed_at": timezone.now(),
    }


def render_report_pdf(report, *, base_url: str | None = None) -> bytes:
    from weasyprint import HTML  # imported lazily: heavy, and only needed here

    html = render_to_string("reports/pdf.html", report_pdf_context(report, base_url=base_url))
    data = HTML(string=html, base_url=base_url).write_pdf()
    logger.info("rendered PDF for report %s (%s bytes)", report.pk, len(data))
    return data
