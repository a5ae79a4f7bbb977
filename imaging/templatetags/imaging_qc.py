"""Template filters for imaging pages: ``{{ flag|qc_label }}``."""

from __future__ import annotations

from django import template

from imaging.qc import flag_label

register = template.Library()


@register.filter
def qc_label(flag: str) -> str:
    """What a series QC flag code means, in the user's language."""
    return flag_label(flag)
