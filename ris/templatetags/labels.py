"""People's words for the internal codes that event rows store (history lists, both languages)."""

from __future__ import annotations

from django import template
from django.apps import apps
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


def _choices(app_label: str, model: str, field: str) -> list[tuple[str, str]]:
    """A field's choices looked up by name: the project package imports no domain app (the
    apps plug in), and an app that is not installed simply has no labels."""
    try:
        return list(apps.get_model(app_label, model)._meta.get_field(field).choices or [])
    except LookupError:
        return []


@register.filter
def material_unit(code: str) -> str:
    return str(UNITS.get(code, code))


@register.filter
def procedure_action(code: str) -> str:
    return str(PROCEDURE_ACTIONS.get(code, code))


@register.filter
def procedure_status(code: str) -> str:
    return str(dict(_choices("scheduling", "RequestedProcedure", "status")).get(code, code))


@register.filter
def report_status(code: str) -> str:
    return str(dict(_choices("reports", "Report", "status")).get(code, code))


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

    pairs = [
        *_choices("scheduling", "Order", "priority"),
        *_choices("scheduling", "RequestedProcedure", "status"),
        *_choices("department", "MaterialItem", "kind"),
        *UNITS.items(),
    ]
    labels = {code: str(label) for code, label in pairs}
    labels["LOW"] = _("Low stock")  # the materials figure's low-stock flag
    return json_script(labels, element_id)


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


@register.filter
def person_name(value: str) -> str:
    """A DICOM PN for people, as the patient banner shows names: ``Wang^XiaoDong=王^小东`` →
    "王小东 (WANG XiaoDong)". Chinese components are joined without a space (PS3.5 6.2.1)."""
    groups = (value or "").split("=")
    alpha = [c for c in groups[0].split("^") if c] if groups else []
    ideo = [c for c in groups[1].split("^") if c] if len(groups) > 1 else []
    alpha_text = (
        " ".join([alpha[0].upper(), *alpha[1:]]) if alpha and not _has_cjk(alpha[0]) else "".join(alpha)
    )
    ideo_text = "".join(ideo) if all(_has_cjk(c) for c in ideo) else " ".join(ideo)
    if ideo_text and alpha_text:
        return f"{ideo_text} ({alpha_text})"
    return ideo_text or alpha_text


@register.filter
def dicom_time(value: str) -> str:
    """A DICOM TM (``HHMMSS.FFFFFF``, or the old ``HH:MM:SS``) as ``12:00:00``; anything else as is."""
    raw = (value or "").strip().replace(":", "")
    digits = raw.split(".")[0]
    if not digits.isdigit() or len(digits) not in (2, 4, 6):
        return value or ""
    parts = [digits[i : i + 2] for i in range(0, len(digits), 2)]
    return ":".join(parts + ["00"] * (2 - len(parts[1:])) if len(parts) == 1 else parts)


@register.filter
def dicom_date(value) -> str:
    """A DICOM DA (``20240131``) as ``2024-01-31``; dates and anything else unchanged."""
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value
