"""The transactional outbox (DESIGN.md §5a): rows written in the transition's transaction,
delivered by a Celery task (Redis only wakes it), swept by beat, ordered per (destination,
ordering key), retried with exponential backoff, ``dead`` after N attempts, retryable.

Lifecycle (``ris.lifecycle``): pending ─deliver→ sent; pending ─fail→ pending (backoff);
pending ─bury→ dead; dead/pending ─retry→ pending (attempts reset). Every transition is one
guarded UPDATE plus an ``OutboxEvent`` row.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from ris.lifecycle import Lifecycle, Transition

from ..models import Destination, MessageType, OutboxEvent, OutboxMessage, OutboxState

logger = logging.getLogger(__name__)
P, SENT, DEAD = OutboxState.PENDING, OutboxState.SENT, OutboxState.DEAD

OUTBOX_LIFECYCLE = Lifecycle(
    model=OutboxMessage,
    status_field="state",
    name="outbox message",
    transitions={
        "deliver": Transition(sources=(P,), target=SENT),
        "fail": Transition(sources=(P,), target=P),
        "bury": Transition(sources=(P,), target=DEAD),
        "retry": Transition(sources=(DEAD, P), target=P),
    },
)

# Procedure events announced to the placer (IHE RAD-3/RAD-4 order status), by action.
PROCEDURE_EVENTS = {
    "order": "scheduled",
    "book": "scheduled",
    "reschedule": "scheduled",
    "arrive": "arrived",
    "start": "started",
    "complete": "completed",
    "cancel": "cancelled",
    "discontinue": "discontinued",
}
# Report events announced as ORU^R01, by action.
REPORT_EVENTS = {"submitted": "preliminary", "signed": "final", "addendum": "amended"}


def max_attempts() -> int:
    return int(getattr(settings, "RIS_HL7_OUTBOX_MAX_ATTEMPTS", 10))


def backoff_seconds(attempts: int) -> float:
    base = float(getattr(settings, "RIS_HL7_OUTBOX_BACKOFF_BASE", 2.0))
    cap = float(getattr(settings, "RIS_HL7_OUTBOX_BACKOFF_MAX", 300.0))
    return min(cap, base * (2 ** max(0, attempts - 1)))


def new_control_id() -> str:
    return "RIS" + secrets.token_hex(8).upper()


def _event(msg_id: int, action: str, from_state: str, to_state: str, *, actor=None, detail=None) -> None:
    OutboxEvent.objects.create(
        message_id=msg_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        at=timezone.now(),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        detail=detail or {},
    )


def _wake(destination_id: int, ordering_key: str) -> None:
    from ..tasks import deliver

    try:
        deliver.delay(destination_id, ordering_key)
    except Exception:
        logger.warning(
            "outbox: broker unavailable, the sweeper will deliver (destination %s)", destination_id
        )


def outbox_enqueue(
    *, message_type: str, event: str, facts: dict, patient_id: int | None, at: datetime | None = None
) -> list[OutboxMessage]:
    """Write one pending row per enabled destination that takes ``message_type``. Must run
    inside the transaction of the change it announces (the caller's ``atomic`` block)."""
    now = timezone.now()
    rows = []
    key = f"patient:{patient_id}" if patient_id else "none"
    for dest in Destination.objects.filter(enabled=True):
        if not dest.wants(message_type):
            continue
        rows.append(
            OutboxMessage(
                destination=dest,
                message_type=message_type,
                event=event,
                ordering_key=key,
                facts={**facts, "at": (at or now).isoformat()},
                control_id=new_control_id(),
                next_attempt_at=now,
                patient_id=patient_id,
                created_at=now,
            )
        )
    if rows:
        OutboxMessage.objects.bulk_create(rows)
        OutboxEvent.objects.bulk_create(
            [OutboxEvent(message=r, action="enqueue", from_state="", to_state=P, at=now) for r in rows]
        )
        for dest_id in {r.destination_id for r in rows}:
            transaction.on_commit(partial(_wake, dest_id, key))
    return rows


# --- same-transaction hooks (connected in integration.hooks) ------------------------------


def on_procedure_recorded(sender, *, procedure_id, action, from_status, to_status, at=None, source="", **kw):
    event = PROCEDURE_EVENTS.get(action)
    if event is None:
        return
    if action == "order" and to_status != "scheduled":
        return  # placed awaiting booking: "scheduled" is announced when it is booked
    from scheduling.models import RequestedProcedure

    row = (
        RequestedProcedure.objects.filter(pk=procedure_id)
        .values_list("order__patient_id", "order__placer_order_number")
        .first()
    )
    if row is None or not row[1]:
        return  # the RIS's own orders have no placer to tell
    patient_id = row[0]
    for message_type in (MessageType.ORM_O01, MessageType.OMI_O23):
        outbox_enqueue(
            message_type=message_type,
            event=event,
            facts={
                "procedure_id": procedure_id,
                "status": to_status,
                "action": action,
                "source": source[:32],
            },
            patient_id=patient_id,
            at=at,
        )


def on_report_recorded(sender, *, report_id, action, to_status, **kw):
    event = REPORT_EVENTS.get(action)
    if event is None:
        return
    from reports.models import Report, ReportVersion

    patient_id = (
        Report.objects.filter(pk=report_id)
        .values_list("requested_procedure__order__patient_id", flat=True)
        .first()
    )
    # The immutable version this event published: the ORU is built from it, whenever delivered.
    version = (
        ReportVersion.objects.filter(report_id=report_id)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    outbox_enqueue(
        message_type=MessageType.ORU_R01,
        event=event,
        facts={"report_id": report_id, "status": to_status, "action": action, "version": version},
        patient_id=patient_id,
    )


# --- lifecycle ------------------------------------------------------------------------------


def outbox_mark_sent(*, message: OutboxMessage, ack_code: str) -> None:
    with transaction.atomic():
        src = OUTBOX_LIFECYCLE.advance(
            pk=message.pk,
            action="deliver",
            updates={
                "sent_at": timezone.now(),
                "ack_code": ack_code,
                "attempts": message.attempts + 1,
                "last_error": "",
                "lease_until": None,
            },
        )
        _event(message.pk, "deliver", src, SENT, detail={"ack": ack_code})


def outbox_mark_failed(
    *, message: OutboxMessage, error: str, ack_code: str = "", permanent: bool = False
) -> str:
    """Record a failed attempt: back off, or ``dead`` past the attempt limit (or when the peer
    rejected the message outright). Returns the new state."""
    attempts = message.attempts + 1
    with transaction.atomic():
        if permanent or attempts >= max_attempts():
            src = OUTBOX_LIFECYCLE.advance(
                pk=message.pk,
                action="bury",
                updates={
                    "attempts": attempts,
                    "last_error": error[:255],
                    "ack_code": ack_code,
                    "lease_until": None,
                },
            )
            _event(message.pk, "bury", src, DEAD, detail={"error": error[:255], "attempts": attempts})
            state = DEAD
        else:
            src = OUTBOX_LIFECYCLE.advance(
                pk=message.pk,
                action="fail",
                updates={
                    "attempts": attempts,
                    "last_error": error[:255],
                    "ack_code": ack_code,
                    "next_attempt_at": timezone.now() + timedelta(seconds=backoff_seconds(attempts)),
                    "lease_until": None,
                },
            )
            _event(message.pk, "fail", src, P, detail={"error": error[:255], "attempts": attempts})
            state = P
    logger.info("outbox %s attempt %s failed (%s): %s", message.pk, attempts, state, error[:120])
    return state


def outbox_retry(*, message: OutboxMessage | int, actor=None, request=None) -> OutboxMessage:
    """Put a dead (or backing-off) message back to pending now, attempts reset; wake delivery."""
    pk = message.pk if isinstance(message, OutboxMessage) else int(message)
    with transaction.atomic():
        src = OUTBOX_LIFECYCLE.advance(
            pk=pk,
            action="retry",
            updates={"attempts": 0, "next_attempt_at": timezone.now(), "lease_until": None},
        )
        _event(pk, "retry", src, P, actor=actor)
        msg = OutboxMessage.objects.get(pk=pk)
        audit_record(
            action="interface.outbox_retry",
            actor=actor,
            request=request,
            object_type="outbox_message",
            object_id=pk,
            patient_id=msg.patient_id,
            detail={"from": src, "control_id": msg.control_id},
        )
        transaction.on_commit(partial(_wake, msg.destination_id, msg.ordering_key))
    return msg
