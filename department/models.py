"""Department management: radiology materials (放射物资管理) and dashboard targets.

Stock is kept as a single integer-like decimal on the item and changed only by
``department.services`` with conditional ``F()`` updates, so concurrent consoles never lose
a decrement. Every change has a row (usage or receipt): the rows are the truth, the stock
level a running balance that ``material_stock_check`` can recompute.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class MaterialKind(models.TextChoices):
    CONTRAST = "contrast", _("Contrast agent")
    FILM = "film", _("Film")
    CONSUMABLE = "consumable", _("Consumable")


class UsageSource(models.TextChoices):
    CONSOLE = "console", _("Technologist console")
    MPPS = "mpps", _("MPPS (billing / film consumption)")
    MANUAL = "manual", _("Manual correction")


class MaterialItem(models.Model):
    code = models.CharField(_("Code"), max_length=32, unique=True)
    name = models.CharField(_("Name"), max_length=128)
    kind = models.CharField(_("Kind"), max_length=16, choices=MaterialKind.choices)
    unit = models.CharField(_("Unit"), max_length=16, help_text=_("ml, sheet, piece…"))
    stock_level = models.DecimalField(_("Stock level"), max_digits=12, decimal_places=2, default=Decimal(0))
    low_stock_threshold = models.DecimalField(
        _("Low-stock threshold"), max_digits=12, decimal_places=2, default=Decimal(0)
    )
    active = models.BooleanField(_("Active"), default=True)

    class Meta:
        verbose_name = _("material item")
        verbose_name_plural = _("material items")
        ordering = ["kind", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_low(self) -> bool:
        return self.stock_level <= self.low_stock_threshold


class MaterialUsage(models.Model):
    """Material used for one procedure (contrast dose, films printed, consumables)."""

    # Not columns: material_record_usage sets them on the row it returns.
    stock_level_after: Decimal
    low_stock: bool

    procedure = models.ForeignKey(
        "scheduling.RequestedProcedure", on_delete=models.PROTECT, related_name="material_usages"
    )
    item = models.ForeignKey(MaterialItem, on_delete=models.PROTECT, related_name="usages")
    quantity = models.DecimalField(
        _("Quantity"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    notes = models.CharField(_("Dose / notes"), max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.CONSOLE)
    source_ae = models.CharField(_("Source AE title"), max_length=16, blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("material usage")
        verbose_name_plural = _("material usages")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["item", "at"], name="matusage_item_at")]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="matusage_qty_pos")]

    def __str__(self) -> str:
        return f"{self.item_id} x{self.quantity} for {self.procedure_id}"


class MaterialReceipt(models.Model):
    """Stock in (入库): delivery of an item."""

    item = models.ForeignKey(MaterialItem, on_delete=models.PROTECT, related_name="receipts")
    quantity = models.DecimalField(
        _("Quantity"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    lot_number = models.CharField(_("Lot number"), max_length=64, blank=True)
    expiry_date = models.DateField(_("Expiry date"), null=True, blank=True)
    supplier = models.CharField(_("Supplier"), max_length=128, blank=True)
    notes = models.CharField(_("Notes"), max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("material receipt")
        verbose_name_plural = _("material receipts")
        ordering = ["-at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="matreceipt_qty_pos")]

    def __str__(self) -> str:
        return f"{self.item_id} +{self.quantity}"


class ProcedureMilestone(models.Model):
    """One row per procedure: its turnaround milestones, derived from the event logs.

    A reporting table (PostgreSQL path of the dashboards): it holds nothing that is not in
    ``scheduling.ProcedureEvent`` / ``reports.ReportEvent``, is written only by
    ``department.services``: refreshed per procedure when a transition commits (the signal
    receivers in ``department.receivers``), caught up by the periodic backstop
    ``milestones_sync`` and rebuilt at any time with ``manage.py department_milestones --rebuild``.
    Reads never write it.
    """

    procedure = models.OneToOneField(
        "scheduling.RequestedProcedure", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    modality = models.CharField(max_length=16)
    priority = models.CharField(max_length=8)
    station = models.CharField(max_length=16, blank=True, null=True)
    # The report's author (the reading radiologist) and who gave the first signature.
    radiologist = models.CharField(max_length=150, blank=True, null=True)
    signer = models.CharField(max_length=150, blank=True, null=True)
    ordered = models.DateTimeField()
    scheduled = models.DateTimeField(null=True)
    arrived = models.DateTimeField(null=True)
    started = models.DateTimeField(null=True)
    completed = models.DateTimeField(null=True)
    # First complete or discontinue: the end of the time on the station.
    ended = models.DateTimeField(null=True)
    images = models.DateTimeField(null=True)
    prelim = models.DateTimeField(null=True)
    final = models.DateTimeField(null=True)
    # First return for correction and first addendum (error statistics).
    returned = models.DateTimeField(null=True)
    addendum = models.DateTimeField(null=True)

    class Meta:
        verbose_name = _("procedure milestone")
        verbose_name_plural = _("procedure milestones")
        indexes = [
            models.Index(fields=["ordered"], name="milestone_ordered"),
            models.Index(fields=["prelim"], name="milestone_prelim"),
            models.Index(fields=["final"], name="milestone_final"),
            models.Index(fields=["started"], name="milestone_started"),
            models.Index(fields=["completed"], name="milestone_completed"),
            # The reading backlog: completed, not yet signed.
            models.Index(
                fields=["completed"],
                name="milestone_unread",
                condition=models.Q(completed__isnull=False, final__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"milestones of {self.procedure_id}"


class MilestoneSyncState(models.Model):
    """Where the backstop sync stands in the event logs (one row; see ``milestones_sync``).

    ``*_event_id`` are the highest ids seen and ``*_events_above`` how many events lay above the
    settled marks at the last sync; the settled marks are ids every event under which has
    committed and been read; the pending marks become settled RIS_MILESTONE_SETTLE_SECONDS after
    ``pending_at``.
    """

    procedure_event_id = models.BigIntegerField(default=0)
    report_event_id = models.BigIntegerField(default=0)
    procedure_events_above = models.BigIntegerField(default=0)
    report_events_above = models.BigIntegerField(default=0)
    settled_procedure_event_id = models.BigIntegerField(default=0)
    settled_report_event_id = models.BigIntegerField(default=0)
    pending_procedure_event_id = models.BigIntegerField(default=0)
    pending_report_event_id = models.BigIntegerField(default=0)
    pending_at = models.DateTimeField(null=True)
    synced_at = models.DateTimeField(null=True)

    class Meta:
        verbose_name = _("milestone sync state")
        verbose_name_plural = _("milestone sync states")

    def __str__(self) -> str:
        return f"milestones synced to {self.procedure_event_id}/{self.report_event_id}"
