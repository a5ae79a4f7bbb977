"""People's words for the internal codes that event rows store (history lists, both languages)."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

register = template.Library()

PROCEDURE_ACTIONS = {
    "order": gettext_lazy("Ordered"),
    "arrive": gettext_lazy("Checked in"),
    "start": gettext_lazy("Started"),
    "complete": gettext_lazy("Completed"),
    "discontinue": gettext_lazy("Discontinued"),
    "cancel": gettext_lazy("Cancelled"),
    "reschedule": gettext_lazy("Rescheduled"),
    "images_available": gettext_lazy("Images available"),
}

SOURCES = {
    "ui": gettext_lazy("web page"),
    "console": gettext_lazy("technologist console"),
    "api": gettext_lazy("API"),
    "dimse": gettext_lazy("DICOM"),
    "stow": gettext_lazy("DICOMweb upload"),
    "import": gettext_lazy("import"),
    "ingest": gettext_lazy("image receipt"),
    "seed": gettext_lazy("demo data"),
}


# Material units as the catalogue stores them (free text; these are the usual ones).
UNITS = {
    "ml": gettext_lazy("ml"),
    "sheet": gettext_lazy("sheet"),
    "piece": gettext_lazy("piece"),
    "bottle": gettext_lazy("bottle"),
    "box": gettext_lazy("box"),
    "vial": gettext_lazy("vial"),
}


@register.filter
def material_unit(code: str) -> str:
    return str(UNITS.get(code, code))


@register.filter
def procedure_action(code: str) -> str:
    return str(PROCEDURE_ACTIONS.get(code, code))


@register.filter
def procedure_status(code: str) -> str:
    from scheduling.models import ProcedureStatus

    return str(dict(ProcedureStatus.choices).get(code, code))


@register.filter
def report_status(code: str) -> str:
    from reports.models import ReportStatus

    return str(dict(ReportStatus.choices).get(code, code))


@register.filter
def event_source(code: str) -> str:
    """``console`` → "technologist console"; ``mpps:CT1`` → "MPPS from CT1"."""
    code = code or ""
    if code.startswith("mpps:"):
        return _("MPPS from %(ae)s") % {"ae": code[5:]}
    return str(SOURCES.get(code, code))


@register.simple_tag
def chart_code_labels(element_id: str = "chart-code-labels"):
    """A JSON map from the codes figures carry (priorities, procedure statuses) to the words of
    the current language, for department.js to label charts and tables with."""
    from django.utils.html import json_script

    from department.models import MaterialKind
    from scheduling.models import Priority, ProcedureStatus

    pairs = [*Priority.choices, *ProcedureStatus.choices, *MaterialKind.choices, *UNITS.items()]
    labels = {code: str(label) for code, label in pairs}
    labels["LOW"] = _("Low stock")  # the materials figure's low-stock flag
    return json_script(labels, element_id)
