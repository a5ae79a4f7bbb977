from django import template

from ris.roles import has_permission

register = template.Library()


@register.filter
def can(user, action: str) -> bool:
    """``{% if user|can:"report.sign" %}``: the permission matrix in templates."""
    return bool(user and user.is_authenticated and has_permission(user, action))
