"""Writes for the department: materials (stock in, usage per exam) and equipment downtime.

Stock changes are single ``UPDATE … SET stock_level = stock_level ± q`` statements (``F()``),
so two consoles recording contrast at the same moment both count. A usage is always
recorded, even if it takes the book stock below zero: the exam happened, so the count was
wrong, and the negative balance is what tells the department to recount.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from audit.services import audit_record
from reports.models import Report, ReportEvent
from ris.errors import ApplicationError, NotFound
from scheduling.models import ProcedureEvent, RequestedProcedure

from .models import MaterialItem, MaterialReceipt, MaterialUsage, MilestoneSyncState, UsageSource
from .selectors.milestones import _milestone_cte

logger = logging.getLogger(__name__)

MAX_QUANTITY = Decimal("100000")


def _quantity(value) -> Decimal:
    try:
        q = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise ApplicationError("Quantity must be a number.", fields={"quantity": ["Not a number."]}) from exc
    if not q.is_finite() or q <= 0 or q > MAX_QUANTITY:
        raise ApplicationError(
            "Quantity must be greater than zero.", fields={"quantity": ["Must be greater than zero."]}
        )
    return q


def _split_source(source: str) -> tuple[str, str]:
    """``"console"``, ``"mpps"``, ``"mpps:CT1"``, ``"manual"`` → (kind, AE title)."""
    kind, _sep, ae = (source or "").partition(":")
    kind = kind.strip().lower()
    if kind not in UsageSource.values:
        raise ApplicationError(
            f"Unknown usage source {source!r}.",
            fields={"source": [f"One of {', '.join(UsageSource.values)}."]},
        )
    return kind, ae.strip()[:16]


def material_record_usage(
    *,
    procedure,
    item_code: str,
    quantity,
    actor=None,
    source: str = UsageSource.CONSOLE,
    notes: str = "",
    at: datetime | None = None,
    request=None,
) -> MaterialUsage:
    """Record material used for one exam and take it out of stock.

    Returns the usage row with two extra attributes: ``stock_level_after`` and ``low_stock``
    (the item is at or below its threshold after this usage; a warning is logged).
    """
    qty = _quantity(quantity)
    kind, source_ae = _split_source(source)
    pk = procedure.pk if isinstance(procedure, RequestedProcedure) else int(procedure)
    with transaction.atomic():
        proc = RequestedProcedure.objects.select_related("order").filter(pk=pk).first()
        if proc is None:
            raise NotFound("No such procedure.")
        item = MaterialItem.objects.filter(code=item_code, active=True).only("pk").first()
        if item is None:
            raise ApplicationError(
                f"Unknown or inactive material {item_code!r}.", fields={"item_code": ["Unknown material."]}
            )
        # The decrement is one statement; the row stays locked by it until commit, so the
        # level read back below is exactly ours.
        MaterialItem.objects.filter(pk=item.pk).update(stock_level=F("stock_level") - qty)
        level, threshold = MaterialItem.objects.filter(pk=item.pk).values_list(
            "stock_level", "low_stock_threshold"
        )[0]
        usage = MaterialUsage.objects.create(
            procedure_id=pk,
            item_id=item.pk,
            quantity=qty,
            notes=(notes or "")[:255],
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            source=kind,
            source_ae=source_ae,
            at=at or timezone.now(),
        )
        audit_record(
            action="material.usage",
            actor=actor,
            request=request,
            object_type="procedure",
            object_id=pk,
            patient_id=proc.order.patient_id,
            source_ae=source_ae,
            detail={"item": item_code, "quantity": str(qty), "source": kind, "usage_id": usage.pk},
        )
    usage.stock_level_after = level
    usage.low_stock = level <= threshold
    if usage.low_stock:
        logger.warning("material %s low stock: %s left (threshold %s)", item_code, level, threshold)
    return usage


def material_receive(
    *,
    item: MaterialItem | str,
    quantity,
    actor=None,
    lot_number: str = "",
    expiry_date: date | None = None,
    supplier: str = "",
    notes: str = "",
    at: datetime | None = None,
    request=None,
) -> MaterialReceipt:
    """Stock in (入库): a delivery adds to the stock level."""
    qty = _quantity(quantity)
    code = item.code if isinstance(item, MaterialItem) else item
    with transaction.atomic():
        obj = MaterialItem.objects.filter(code=code).first()
        if obj is None:
            raise ApplicationError("Unknown material.", fields={"item": ["Unknown material."]})
        MaterialItem.objects.filter(pk=obj.pk).update(stock_level=F("stock_level") + qty)
        receipt = MaterialReceipt.objects.create(
            item=obj,
            quantity=qty,
            lot_number=(lot_number or "")[:64],
            expiry_date=expiry_date,
            supplier=(supplier or "")[:128],
            notes=(notes or "")[:255],
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            at=at or timezone.now(),
        )
        audit_record(
            action="material.receive",
            actor=actor,
            request=request,
            object_type="material",
            object_id=obj.pk,
            detail={"item": code, "quantity": str(qty), "lot": receipt.lot_number},
        )
    return receipt


def material_item_upsert(
    *,
    code: str,
    name: str,
    kind: str,
    unit: str,
    low_stock_threshold=0,
    initial_stock=0,
    active: bool = True,
) -> tuple[MaterialItem, bool]:
    """Create an item (with an opening stock) or update its descriptive fields. Idempotent."""
    item, created = MaterialItem.objects.get_or_create(
        code=code,
        defaults={
            "name": name,
            "kind": kind,
            "unit": unit,
            "low_stock_threshold": Decimal(str(low_stock_threshold)),
            "stock_level": Decimal(str(initial_stock)),
            "active": active,
        },
    )
    if not created:
        MaterialItem.objects.filter(pk=item.pk).update(name=name, kind=kind, unit=unit, active=active)
    return item, created


# ---------------------------------------------------------------------------------------
# Turnaround milestones (the reporting table behind the PostgreSQL dashboards)

MILESTONE_COLUMNS = [
    "modality",
    "priority",
    "station",
    "radiologist",
    "signer",
    "ordered",
    "scheduled",
    "arrived",
    "started",
    "completed",
    "ended",
    "images",
    "prelim",
    "final",
    "returned",
    "addendum",
]
# Event ids are allocated before commit, so a slow transaction can commit an event *below* the
# mark already synced. The backstop therefore re-reads every event above a "settled" mark: the
# highest ids seen at a sync at least RIS_MILESTONE_SETTLE_SECONDS ago. No transaction lives
# that long (requests and tasks are time-limited well below it), so every event at or under the
# settled mark has committed (or rolled back) and has been read by a sync since.
REBUILD_CHUNK = 50_000
_SYNC_LOCK = 0x52495344  # pg advisory lock key ("RISD"): serialises every write of the table


def _settle_seconds() -> int:
    return int(settings.RIS_MILESTONE_SETTLE_SECONDS)


def _upsert_sql(source: str) -> str:
    cols = ", ".join(MILESTONE_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in MILESTONE_COLUMNS)
    # Column names come from the constant list above; values travel as parameters.
    insert = "INSERT INTO department_proceduremilestone (procedure_id, {cols}) SELECT id, {cols} FROM m "
    upsert = "ON CONFLICT (procedure_id) DO UPDATE SET {updates}"
    return (
        _milestone_cte(MILESTONE_COLUMNS, source) + insert.format(cols=cols) + upsert.format(updates=updates)
    )


def _lock(cur) -> None:
    # One writer of the table at a time, each statement after the lock: the last refresh of a
    # procedure always reads a snapshot at least as new as the one before it (no stale overwrite
    # by a slower, older statement). A few milliseconds of work that PostgreSQL would otherwise
    # spend ~2 s JIT-compiling.
    cur.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK])
    cur.execute("SET LOCAL jit = off")


def milestones_refresh(*, procedure_ids) -> int:
    """Recompute the milestones of these procedures from the event logs (PostgreSQL)."""
    ids = sorted({int(i) for i in procedure_ids})
    if not ids or connection.vendor != "postgresql":
        return 0
    with transaction.atomic(), connection.cursor() as cur:
        _lock(cur)
        cur.execute(_upsert_sql("ids"), {"ids": ids, "modality": ""})
        return cur.rowcount


def milestones_rebuild(*, chunk: int = REBUILD_CHUNK, stdout=None) -> int:
    """Recompute every procedure's milestones, in id ranges; then mark the logs as synced.

    Events committed while a rebuild runs are above the marks read at its start and are
    picked up by the next sync.
    """
    if connection.vendor != "postgresql":
        return 0

    marks = _event_marks()
    started = timezone.now()
    hi = RequestedProcedure.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    done = 0
    for lo in range(1, hi + 1, chunk):
        with transaction.atomic(), connection.cursor() as cur:
            _lock(cur)
            cur.execute(_upsert_sql("range"), {"lo": lo, "hi": lo + chunk - 1, "modality": ""})
            done += cur.rowcount
        if stdout is not None:
            stdout.write(f"  milestones up to procedure {min(lo + chunk - 1, hi)}: {done}\n")
    MilestoneSyncState.objects.update_or_create(
        pk=1,
        defaults={
            "procedure_event_id": marks[0],
            "report_event_id": marks[1],
            "settled_procedure_event_id": marks[0],
            "settled_report_event_id": marks[1],
            "pending_procedure_event_id": marks[0],
            "pending_report_event_id": marks[1],
            "pending_at": started,
            "procedure_events_above": 0,
            "report_events_above": 0,
            "synced_at": timezone.now(),
        },
    )
    return done


def _event_marks() -> tuple[int, int]:
    pe = ProcedureEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    re_ = ReportEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    return pe, re_


def _seen_above(pe: int, re_: int) -> tuple[int, int, int, int]:
    """(max id, count) of each log above the settled marks: a late commit changes the count."""
    p = ProcedureEvent.objects.filter(pk__gt=pe).aggregate(m=Max("pk"), n=Count("pk"))
    r = ReportEvent.objects.filter(pk__gt=re_).aggregate(m=Max("pk"), n=Count("pk"))
    return p["m"] or pe, p["n"], r["m"] or re_, r["n"]


def milestones_sync(*, now: datetime | None = None) -> int:
    """The backstop: fold into the milestone table every event a receiver may have missed.

    The signal receivers (``department.receivers``) refresh a procedure as soon as its
    transition commits; this periodic job (``department.milestones_sync``, Celery beat, one run
    at a time) catches the rest: events written without a signal (``images_available`` on a
    started exam, imports, hand fixes), a receiver that failed, a worker that died between
    commit and refresh, and events committed late with ids below ones already synced. It
    re-reads every event above the settled marks (see ``RIS_MILESTONE_SETTLE_SECONDS``) and is
    a no-op when neither the highest id nor the number of events above the marks has changed.
    Returns the number of procedures refreshed.
    """
    if connection.vendor != "postgresql":
        return 0
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cur:
        # One sync at a time; the others wait for it and then find nothing left to do.
        _lock(cur)
        state, _ = MilestoneSyncState.objects.get_or_create(pk=1)
        if state.synced_at is None:
            # Never built: compute everything in id ranges rather than one giant id list.
            return milestones_rebuild()
        settled = (state.settled_procedure_event_id, state.settled_report_event_id)
        pending = (state.pending_procedure_event_id, state.pending_report_event_id)
        pending_at = state.pending_at
        if pending_at is not None and now - pending_at >= timedelta(seconds=_settle_seconds()):
            # Every id up to the pending marks was allocated before pending_at: all committed by now.
            settled, pending_at = pending, None
        seen = _seen_above(*settled)
        before = (
            state.procedure_event_id,
            state.procedure_events_above,
            state.report_event_id,
            state.report_events_above,
        )
        n = 0
        if seen != before or settled != (state.settled_procedure_event_id, state.settled_report_event_id):
            cur.execute(
                "SELECT DISTINCT requested_procedure_id FROM scheduling_procedureevent WHERE id > %(pe)s"
                " UNION SELECT r.requested_procedure_id FROM reports_reportevent x"
                " JOIN reports_report r ON r.id = x.report_id WHERE x.id > %(re)s",
                {"pe": settled[0], "re": settled[1]},
            )
            ids = sorted(r[0] for r in cur.fetchall())
            if ids:
                cur.execute(_upsert_sql("ids"), {"ids": ids, "modality": ""})
                n = cur.rowcount
        if pending_at is None:
            pending, pending_at = (seen[0], seen[2]), now
        MilestoneSyncState.objects.filter(pk=1).update(
            procedure_event_id=seen[0],
            procedure_events_above=seen[1],
            report_event_id=seen[2],
            report_events_above=seen[3],
            settled_procedure_event_id=settled[0],
            settled_report_event_id=settled[1],
            pending_procedure_event_id=pending[0],
            pending_report_event_id=pending[1],
            pending_at=pending_at,
            synced_at=now,
        )
    logger.debug("milestones synced: %s procedures", n)
    return n


def milestones_refresh_for_report(*, report_id: int) -> int:
    """The milestones of the procedure of this report (after a report transition)."""
    pid = Report.objects.filter(pk=report_id).values_list("requested_procedure_id", flat=True).first()
    return milestones_refresh(procedure_ids=[pid]) if pid is not None else 0
