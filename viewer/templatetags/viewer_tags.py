"""``{% viewer_link uid %}``: the built-in viewer's launch link, for any page that shows an exam.

Rendered only for users whose role may view images. ``side=True`` opens the viewer in a
window beside the current one (the report editor: images and report side by side).
An external viewer (``RIS_VIEWER_URL_TEMPLATE``) keeps its own link where pages show it.
"""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ris.roles import has_permission

register = template.Library()

SIDE_BY_SIDE = (
    "var w=Math.floor(screen.availWidth/2);"
    "var v=window.open(this.href,'ris-viewer','left='+w+',top=0,width='+w+',height='+screen.availHeight);"
    "if(v){v.focus();return false;}"
)


@register.simple_tag(takes_context=True)
def viewer_link(context, study_instance_uid, *, side=False, label=""):
    request = context.get("request")
    user = getattr(request, "user", None)
    if not study_instance_uid or user is None or not has_permission(user, "imaging.view"):
        return ""
    url = reverse("viewer:study", args=[study_instance_uid])
    text = label or _("Open viewer")
    if side:
        return format_html(
            '<a class="button viewer-link" href="{}" target="ris-viewer" onclick="{}" data-testid="open-viewer">{}</a>',
            url,
            SIDE_BY_SIDE,
            text,
        )
    return format_html(
        '<a class="button viewer-link" href="{}" target="ris-viewer" data-testid="open-viewer">{}</a>',
        url,
        text,
    )
