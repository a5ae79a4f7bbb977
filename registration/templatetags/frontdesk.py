"""Small display helpers for the front-desk pages."""

from __future__ import annotations

from datetime import date

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def age(birth: date | None) -> str:
    """Age in whole years (months under two years), e.g. "45 y" / "45岁"."""
    if not birth:
        return ""
    today = date.today()
    years = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    if years >= 2:
        return _("%(n)d y") % {"n": years}
    months = (today.year - birth.year) * 12 + today.month - birth.month - (today.day < birth.day)
    return _("%(n)d mo") % {"n": max(months, 0)}
