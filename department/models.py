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
        ordering = ["kind", "code"]
        verbose_name = _("material item")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_low(self) -> bool:
        return self.stock_level <= self.low_stock_threshold


class MaterialUsage(models.Model):
    """Material used for one procedure (contrast dose, films printed, consumables)."""

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
        ordering = ["-at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="matreceipt_qty_pos")]

    def __str__(self) -> str:
        return f"{self.item_id} +{self.quantity}"
