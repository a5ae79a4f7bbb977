from __future__ import annotations

from django.db.models import QuerySet

from .models import AuditEvent


def audit_event_list(
    *,
    patient_id: int | None = None,
    actor: str = "",
    action: str = "",
    since=None,
    until=None,
    patient_ids: list[int] | None = None,
    outcome: str = "",
) -> QuerySet[AuditEvent]:
    """Audit events, newest first. ``patient_ids`` (several records of one person, or none
    known: then nothing matches) narrows like ``patient_id``; ``outcome`` is exact."""
    qs = AuditEvent.objects.all()
    if patient_id:
        qs = qs.filter(patient_ref=patient_id)
    if patient_ids is not None:
        qs = qs.filter(patient_ref__in=patient_ids) if patient_ids else qs.none()
    if outcome:
        qs = qs.filter(outcome=outcome)
    if actor:
        qs = qs.filter(actor_username__iexact=actor)
    if action:
        qs = qs.filter(action__startswith=action)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-at", "-id")
