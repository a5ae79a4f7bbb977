"""Reads for the interface monitor (no writes)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import Destination, Direction, InterfaceMessage, LogStatus, OutboxMessage, OutboxState, Sender


def sender_summary() -> list[dict]:
    now = timezone.now()
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    stats = {
        row["sender_id"]: row
        for row in InterfaceMessage.objects.filter(direction=Direction.INBOUND, sender__isnull=False)
        .values("sender_id")
        .annotate(
            last=Max("received_at"),
            hour=Count("id", filter=Q(received_at__gte=hour)),
            day=Count("id", filter=Q(received_at__gte=day)),
            errors=Count("id", filter=Q(received_at__gte=day, status__in=[LogStatus.AE, LogStatus.AR])),
        )
    }
    out = []
    for sender in Sender.objects.all():
        s: dict = dict(stats.get(sender.pk) or {})
        out.append(
            {
                "sender": sender,
                "last": s.get("last"),
                "per_minute": round(s.get("hour", 0) / 60, 2),
                "day": s.get("day", 0),
                "errors": s.get("errors", 0),
            }
        )
    return out


def unknown_sender_count(hours: int = 24) -> int:
    return InterfaceMessage.objects.filter(
        direction=Direction.INBOUND,
        sender__isnull=True,
        received_at__gte=timezone.now() - timedelta(hours=hours),
    ).count()


def destination_summary() -> list[dict]:
    now = timezone.now()
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    box = {
        row["destination_id"]: row
        for row in OutboxMessage.objects.values("destination_id").annotate(
            pending=Count("id", filter=Q(state=OutboxState.PENDING)),
            dead=Count("id", filter=Q(state=OutboxState.DEAD)),
            hour=Count("id", filter=Q(state=OutboxState.SENT, sent_at__gte=hour)),
            day=Count("id", filter=Q(state=OutboxState.SENT, sent_at__gte=day)),
            last=Max("sent_at"),
        )
    }
    errors = {
        row["destination_id"]: row["n"]
        for row in InterfaceMessage.objects.filter(direction=Direction.OUTBOUND, received_at__gte=day)
        .exclude(status=LogStatus.AA)
        .values("destination_id")
        .annotate(n=Count("id"))
    }
    out = []
    for dest in Destination.objects.all():
        b: dict = dict(box.get(dest.pk) or {})
        last_error = (
            OutboxMessage.objects.filter(destination=dest)
            .exclude(last_error="")
            .order_by("-id")
            .values_list("last_error", flat=True)
            .first()
        )
        out.append(
            {
                "destination": dest,
                "last": b.get("last"),
                "per_minute": round(b.get("hour", 0) / 60, 2),
                "day": b.get("day", 0),
                "pending": b.get("pending", 0),
                "dead": b.get("dead", 0),
                "errors": errors.get(dest.pk, 0),
                "last_error": last_error or "",
            }
        )
    return out


def message_log(*, direction="", status="", message_type="", party="", control_id=""):
    qs = InterfaceMessage.objects.select_related("sender", "destination").order_by("-received_at", "-id")
    if direction:
        qs = qs.filter(direction=direction)
    if status:
        qs = qs.filter(status=status)
    if message_type:
        qs = qs.filter(message_type__istartswith=message_type)
    if party:
        qs = qs.filter(
            Q(sender__application__iexact=party)
            | Q(destination__name__iexact=party)
            | Q(sending_application__iexact=party)
        )
    if control_id:
        qs = qs.filter(control_id=control_id)
    return qs


def outbox_attention(limit: int = 100):
    """Dead messages and pending ones that have failed at least once."""
    return (
        OutboxMessage.objects.select_related("destination")
        .filter(Q(state=OutboxState.DEAD) | Q(state=OutboxState.PENDING, attempts__gt=0))
        .order_by("-id")[:limit]
    )
