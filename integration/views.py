"""The interface monitor (admin and department head) and an admin-only message view."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_record
from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission

from . import selectors
from .models import Direction, InterfaceMessage, LogStatus, OutboxMessage
from .services.outbox import outbox_retry


class LogFilterForm(forms.Form):
    direction = forms.ChoiceField(
        label=gettext_lazy("Direction"), required=False, choices=[("", "—"), *Direction.choices]
    )
    status = forms.ChoiceField(
        label=gettext_lazy("Status"), required=False, choices=[("", "—"), *LogStatus.choices]
    )
    message_type = forms.CharField(label=gettext_lazy("Message type"), required=False, max_length=16)
    party = forms.CharField(label=gettext_lazy("Sender / destination"), required=False, max_length=64)
    control_id = forms.CharField(label=gettext_lazy("Control ID"), required=False, max_length=64)


@never_cache
@require_GET
@role_required("interface.view")
def monitor_view(request):
    form = LogFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    log = selectors.message_log(**{k: v for k, v in filters.items() if v})
    page = Paginator(log, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    audit_record(
        action="interface.monitor_view",
        request=request,
        object_type="interface",
        object_id="monitor",
        detail={"filters": {k: v for k, v in filters.items() if v}},
    )
    return render(
        request,
        "integration/monitor.html",
        {
            "senders": selectors.sender_summary(),
            "unknown_senders": selectors.unknown_sender_count(),
            "destinations": selectors.destination_summary(),
            "attention": selectors.outbox_attention(),
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "can_manage": has_permission(request.user, "interface.manage"),
            "can_raw": has_permission(request.user, "interface.raw"),
        },
    )


@never_cache
@require_GET
@role_required("interface.raw")
def message_detail_view(request, pk: int):
    msg = get_object_or_404(InterfaceMessage.objects.select_related("sender", "destination"), pk=pk)
    audit_record(
        action="interface.message_view",
        request=request,
        object_type="hl7_message",
        object_id=msg.pk,
        patient_id=msg.patient_id,
        detail={"raw": True},
    )
    return render(
        request,
        "integration/message_detail.html",
        {"msg": msg, "raw_lines": msg.raw.split("\r"), "ack_lines": msg.ack.split("\r")},
    )


@require_POST
@role_required("interface.manage")
def outbox_retry_view(request, pk: int):
    msg = get_object_or_404(OutboxMessage, pk=pk)
    try:
        outbox_retry(message=msg, actor=request.user, request=request)
    except ApplicationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Message %(id)s queued for delivery again.") % {"id": msg.control_id})
    return redirect("integration:monitor")
