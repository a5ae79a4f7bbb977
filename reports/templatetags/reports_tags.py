from django import template

from ris.roles import has_permission
from ris.templatetags.ris_tags import pn

register = template.Library()


@register.filter
def can(user, action: str) -> bool:
    """``{% if user|can:"report.sign" %}``: the permission matrix in templates."""
    return bool(user and user.is_authenticated and has_permission(user, action))


register.filter("pn", pn)  # shared with every app (ris_tags)
