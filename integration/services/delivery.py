"""Outbox delivery over MLLP: one worker per (destination, ordering key) at a time (a
PostgreSQL advisory lock), messages in id order, the head blocking the rest until it is sent
or dead, every attempt logged. A killed worker releases its lock with its connection; the
row is still ``pending`` and the sweeper wakes delivery again after the lease."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from ..hl7 import build as builders
from ..hl7.client import MLLPConnection
from ..models import CODECS, Destination, Direction, InterfaceMessage, LogStatus, OutboxMessage, OutboxState
from . import outbox

logger = logging.getLogger(__name__)
LOCK_NAMESPACE = 0x484C37  # "HL7"


class _KeyLock:
    """Session advisory lock on (destination, ordering key); a no-op off PostgreSQL."""

    def __init__(self, destination_id: int, key: str):
        self.args = (LOCK_NAMESPACE + destination_id, key)
        self.held = False

    def acquire(self) -> bool:
        if connection.vendor != "postgresql":
            self.held = True
            return True
        with connection.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", self.args)
            self.held = bool(cur.fetchone()[0])
        return self.held

    def release(self) -> None:
        if self.held and connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", self.args)
        self.held = False


def _eager() -> bool:
    from ris.celery import app

    return bool(app.conf.task_always_eager or getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))


def _later(destination_id: int, key: str, seconds: float, tries: int = 0) -> None:
    if _eager():
        return  # in-process mode: the sweeper (or the next event) delivers it
    from ..tasks import deliver

    try:
        deliver.apply_async((destination_id, key), countdown=max(0.5, seconds))
    except Exception:  # broker down: the sweeper delivers later
        logger.warning("outbox: could not schedule a retry (broker down); the sweeper will")


def parse_ack(data: bytes, charset_codec: str) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, MSA-3/ERR text) of an acknowledgement, via python-hl7."""
    import hl7

    text = data.decode(charset_codec, errors="replace").replace("\n", "\r")
    msg = hl7.parse(text)
    try:
        msa = msg.segment("MSA")
    except KeyError:
        return "", "", "no MSA segment"
    code = str(msa(1)) if len(msa) > 1 else ""
    control = str(msa(2)) if len(msa) > 2 else ""
    info = str(msa(3)) if len(msa) > 3 else ""
    return code.strip().upper(), control.strip(), info


def _log(msg: OutboxMessage, status: str, *, error: str = "", ack: str = "") -> None:
    InterfaceMessage.objects.create(
        direction=Direction.OUTBOUND,
        destination_id=msg.destination_id,
        message_type=msg.message_type,
        control_id=msg.control_id,
        status=status,
        error=error[:255],
        charset=msg.destination.charset,
        raw=msg.message,
        ack=ack,
        outbox=msg,
        patient_id=msg.patient_id,
        received_at=timezone.now(),
        processed_at=timezone.now(),
    )


def deliver_key(*, destination_id: int, ordering_key: str, budget: int = 1000) -> int:
    """Deliver the due pending messages of one (destination, key), in order. Returns the count sent."""
    dest = Destination.objects.filter(pk=destination_id).first()
    if dest is None or not dest.enabled:
        return 0
    lock = _KeyLock(destination_id, ordering_key)
    if not lock.acquire():
        return 0  # another worker is delivering this key; it drains the queue
    codec_name = CODECS.get(dest.charset, "utf-8")
    conn: MLLPConnection | None = None
    sent = 0
    try:
        while sent < budget:
            msg = (
                OutboxMessage.objects.select_related("destination")
                .filter(destination_id=destination_id, ordering_key=ordering_key, state=OutboxState.PENDING)
                .order_by("id")
                .first()
            )
            if msg is None:
                break
            now = timezone.now()
            if msg.next_attempt_at > now:
                _later(destination_id, ordering_key, (msg.next_attempt_at - now).total_seconds())
                break
            if not msg.message:
                msg.message = builders.build(msg)
                OutboxMessage.objects.filter(pk=msg.pk, message="").update(message=msg.message)
            payload = msg.message.encode(codec_name, errors="replace")
            try:
                if conn is None:
                    conn = MLLPConnection(dest.host, dest.port, timeout=settings.RIS_HL7_OUTBOX_TIMEOUT)
                raw_ack = conn.exchange(payload)
                code, control, info = parse_ack(raw_ack, codec_name)
            except Exception as exc:  # network, framing or an unparsable ACK: retry later
                if conn is not None:
                    conn.close()
                    conn = None
                error = f"{exc.__class__.__name__}: {exc}"[:255]
                _log(msg, LogStatus.FAILED, error=error)
                if outbox.outbox_mark_failed(message=msg, error=error) == OutboxState.PENDING:
                    _later(destination_id, ordering_key, outbox.backoff_seconds(msg.attempts + 1))
                    break
                continue
            ack_text = raw_ack.decode(codec_name, errors="replace")
            if code in ("AA", "CA") and control in ("", msg.control_id):
                with transaction.atomic():  # one commit for the state change and its log row
                    outbox.outbox_mark_sent(message=msg, ack_code=code)
                    _log(msg, LogStatus.AA, ack=ack_text)
                sent += 1
                continue
            permanent = code in ("AR", "CR")
            status = LogStatus.AR if permanent else LogStatus.AE
            error = f"peer answered {code or '?'}: {info}"[:255]
            _log(msg, status, error=error, ack=ack_text)
            if outbox.outbox_mark_failed(
                message=msg, error=error, ack_code=code[:2], permanent=permanent
            ) == (OutboxState.PENDING):
                _later(destination_id, ordering_key, outbox.backoff_seconds(msg.attempts + 1))
                break
    finally:
        if conn is not None:
            conn.close()
        lock.release()
    if sent:
        logger.info("outbox: %s message(s) delivered to destination %s", sent, destination_id)
    return sent


def sweep_due(limit: int = 1000) -> int:
    """Wake delivery for every (destination, key) with a pending message due for longer than
    the lease: its wake-up was lost (broker flushed, worker killed) or is overdue."""
    from ..tasks import deliver

    cutoff = timezone.now() - timedelta(seconds=settings.RIS_HL7_OUTBOX_LEASE_SECONDS)
    keys = list(
        OutboxMessage.objects.filter(
            state=OutboxState.PENDING, next_attempt_at__lte=cutoff, destination__enabled=True
        )
        .values("destination_id", "ordering_key")
        .annotate(first=Min("id"))
        .order_by("first")[:limit]
    )
    for row in keys:
        if _eager():
            deliver_key(destination_id=row["destination_id"], ordering_key=row["ordering_key"])
        else:
            deliver.delay(row["destination_id"], row["ordering_key"])
    return len(keys)
