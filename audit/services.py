"""Writing audit events. One call per access to patient data."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from ris.net import client_ip
from ris.roles import user_roles

from .models import AuditEvent, Outcome

logger = logging.getLogger(__name__)


def _client_ip(request) -> str | None:
    return client_ip(request)


def actor_role(user) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""

    return ",".join(sorted(user_roles(user)))


def audit_record(
    *,
    action: str,
    actor=None,
    request=None,
    object_type: str = "",
    object_id: Any = "",
    patient_id: int | None = None,
    outcome: str = Outcome.SUCCESS,
    source_ae: str = "",
    detail: dict | None = None,
    source_ip: str | None = None,
) -> AuditEvent:
    """Append one audit event. ``actor`` defaults to the request's user.

    ``source_ip`` is for callers without an HTTP request (the DICOM node passes the peer's address).
    """
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    event = AuditEvent(
        at=timezone.now(),
        actor_id=actor.pk if authenticated else None,
        actor_username=actor.get_username() if authenticated else "",
        role=actor_role(actor),
        source_ip=source_ip or _client_ip(request),
        source_ae=source_ae[:16],
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:128] if object_id is not None else "",
        patient_ref=patient_id,
        outcome=outcome,
        detail=detail or {},
    )
    event.save(force_insert=True)
    logger.debug("audit %s %s %s", action, object_type, event.pk)
    return event
