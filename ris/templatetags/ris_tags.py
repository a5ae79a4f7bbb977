"""Template filters every app uses."""

from django import template

register = template.Library()


@register.filter
def pn(value: str) -> str:
    """A DICOM PN (``Li^Ming=李^明``) for people: components joined by spaces, groups by " / "."""
    groups = [" ".join(c for c in g.split("^") if c) for g in (value or "").split("=")]
    return " / ".join(g for g in groups if g)
