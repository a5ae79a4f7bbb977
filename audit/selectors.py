from __future__ import annotations

from django.db.models import QuerySet

from .models import AuditEvent


def audit_event_list(
    *, patient_id: int | None = None, actor: str = "", action: str = "", since=None, until=None
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if patient_id:
        qs = qs.filter(patient_ref=patient_id)
    if actor:
        qs = qs.filter(actor_username__iexact=actor)
    if action:
        qs = qs.filter(action__startswith=action)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-at", "-id")
