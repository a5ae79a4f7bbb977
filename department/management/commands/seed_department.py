"""Seed the department's materials catalogue (idempotent; `make run` calls it)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from department.models import MaterialKind
from department.services import material_item_upsert

K = MaterialKind

# code, name, kind, unit, low-stock threshold, opening stock
MATERIALS = [
    ("IOHEXOL350", "Iohexol 350 mgI/ml (100 ml)", K.CONTRAST, "ml", 2000, 10000),
    ("IOPROMIDE370", "Iopromide 370 mgI/ml (100 ml)", K.CONTRAST, "ml", 2000, 8000),
    ("GADOBUTROL", "Gadobutrol 1.0 mmol/ml (7.5 ml)", K.CONTRAST, "ml", 150, 600),
    ("BARIUM", "Barium sulfate suspension", K.CONTRAST, "ml", 1000, 5000),
    ("FILM1417", "Dry film 14×17 in", K.FILM, "sheet", 200, 1000),
    ("FILM1114", "Dry film 11×14 in", K.FILM, "sheet", 200, 800),
    ("FILM0810", "Dry film 8×10 in", K.FILM, "sheet", 100, 500),
    ("SYRINGE200", "Power injector syringe 200 ml", K.CONSUMABLE, "piece", 50, 300),
    ("CANNULA20G", "IV cannula 20G", K.CONSUMABLE, "piece", 100, 500),
    ("USGEL", "Ultrasound gel 250 ml", K.CONSUMABLE, "bottle", 20, 60),
]


class Command(BaseCommand):
    help = "Create the demo materials catalogue with opening stock (safe to run repeatedly)."

    def handle(self, *args, **options):
        created = 0
        for code, name, kind, unit, threshold, stock in MATERIALS:
            _item, new = material_item_upsert(
                code=code,
                name=name,
                kind=kind,
                unit=unit,
                low_stock_threshold=threshold,
                initial_stock=stock,
            )
            created += int(new)
        self.stdout.write(self.style.SUCCESS(f"Materials ready: {len(MATERIALS)} items ({created} new)."))
