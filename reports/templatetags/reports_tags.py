from django import template

from ris.roles import has_permission

register = template.Library()


@register.filter
def can(user, action: str) -> bool:
    """``{% if user|can:"report.sign" %}``: the permission matrix in templates."""
    return bool(user and user.is_authenticated and has_permission(user, action))


@register.filter
def pn(value: str) -> str:
    """A DICOM PN (``Li^Ming=李^明``) for people: components joined by spaces, groups by " / "."""
    groups = [" ".join(c for c in g.split("^") if c) for g in (value or "").split("=")]
    return " / ".join(g for g in groups if g)
