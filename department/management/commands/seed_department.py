"""Seed the department's materials catalogue and, in demo mode, a morning of department work.

Idempotent; ``make run`` calls it after ``seed_demo``. The demo activity goes through the
services (orders, check-in, MPPS-like start/complete, images, reports, materials), so every
figure on the dashboards has something to show on the first visit.
"""

from __future__ import annotations

import contextlib
import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from department.models import MaterialKind
from department.services import material_item_upsert, material_record_usage
from ris.errors import ApplicationError

logger = logging.getLogger(__name__)
K = MaterialKind

# code, name, kind, unit, low-stock threshold, opening stock
MATERIALS = [
    ("IOHEXOL350", "Iohexol 350 mgI/ml (100 ml)", K.CONTRAST, "ml", 2000, 10000),
    ("IOPROMIDE370", "Iopromide 370 mgI/ml (100 ml)", K.CONTRAST, "ml", 2000, 8000),
    ("GADOBUTROL", "Gadobutrol 1.0 mmol/ml (7.5 ml)", K.CONTRAST, "ml", 150, 600),
    ("BARIUM", "Barium sulfate suspension", K.CONTRAST, "ml", 1000, 5000),
    ("FILM1417", "Dry film 14×17 in", K.FILM, "sheet", 200, 1000),
    ("FILM1114", "Dry film 11×14 in", K.FILM, "sheet", 200, 800),
    ("FILM0810", "Dry film 8×10 in", K.FILM, "sheet", 100, 120),
    ("SYRINGE200", "Power injector syringe 200 ml", K.CONSUMABLE, "piece", 50, 300),
    ("CANNULA20G", "IV cannula 20G", K.CONSUMABLE, "piece", 100, 500),
    ("USGEL", "Ultrasound gel 250 ml", K.CONSUMABLE, "bottle", 20, 60),
]
USAGE_BY_MODALITY = {
    "CT": [("IOHEXOL350", 80, "80 ml IV at 4 ml/s"), ("SYRINGE200", 1, "")],
    "MR": [("GADOBUTROL", 7.5, "0.1 mmol/kg")],
    "DX": [("FILM1417", 1, "")],
    "CR": [("FILM1417", 1, "")],
    "MG": [("FILM0810", 2, "")],
    "US": [("USGEL", 1, "")],
}
CANCEL_REASONS = ["Patient request", "Clinical condition changed", "Duplicate order", "Contraindication"]
MARK = "DEPTDEMO"


class Command(BaseCommand):
    help = "Create the materials catalogue (and, in demo mode, a morning of department activity)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-activity",
            action="store_true",
            default=None,
            help="create today's demo activity (default: on when RIS_DEMO_MODE)",
        )
        parser.add_argument("--no-demo-activity", dest="demo_activity", action="store_false")

    def handle(self, *args, **options):
        created = 0
        for code, name, kind, unit, threshold, stock in MATERIALS:
            _item, new = material_item_upsert(
                code=code, name=name, kind=kind, unit=unit, low_stock_threshold=threshold, initial_stock=stock
            )
            created += int(new)
        self.stdout.write(self.style.SUCCESS(f"Materials ready: {len(MATERIALS)} items ({created} new)."))
        wanted = options["demo_activity"]
        if wanted is None:
            wanted = getattr(settings, "RIS_DEMO_MODE", False)
        if wanted:
            n = self._demo_activity()
            self.stdout.write(
                self.style.SUCCESS(f"Demo department activity: {n} exams in the last 24 hours.")
            )

    # -----------------------------------------------------------------------------------

    def _demo_activity(self) -> int:
        from django.contrib.auth import get_user_model

        from registration.models import Patient
        from scheduling.models import Order, ProcedureType, ScheduledProcedureStep, Station

        today = timezone.localdate()
        tag = f"{MARK}-{today:%Y%m%d}"
        if Order.objects.filter(placer_order_number__startswith=tag).exists():
            return 0
        stations = list(Station.objects.filter(active=True))
        patients = list(Patient.objects.filter(merged_into__isnull=True)[:50])
        if not stations or not patients:
            self.stderr.write("demo activity skipped: run seed_demo first (no stations or patients)")
            return 0
        users = {
            u.username: u
            for u in get_user_model().objects.filter(username__in=["tech", "radiologist", "reviewer"])
        }
        rng = random.Random(f"{tag}")
        now = timezone.now()
        done = 0
        for station in stations:
            types = list(ProcedureType.objects.filter(modality=station.modality, active=True))
            if not types:
                continue
            # The last 24 hours of this station's working time, up to 90 minutes ago.
            t = timezone.localtime(now - timedelta(hours=24))
            t = t.replace(minute=(t.minute // 15) * 15, second=0, microsecond=0)
            n = 0
            while t + timedelta(minutes=40) < now - timedelta(minutes=90):
                pt = rng.choice(types)
                end = t + timedelta(minutes=pt.duration_minutes)
                in_hours = station.fits(t, end)
                busy = ScheduledProcedureStep.objects.filter(
                    station=station, start__lt=end, end__gt=t
                ).exists()
                if in_hours and not busy:
                    try:
                        self._one_exam(
                            station, pt, t, rng.choice(patients), rng, users, f"{tag}-{station.ae_title}-{n}"
                        )
                        done += 1
                    except ApplicationError as exc:
                        logger.info("demo exam skipped: %s", exc.message)
                n += 1
                t += timedelta(minutes=40)
        self._demo_downtime(stations, users.get("tech"))
        return done

    def _one_exam(self, station, pt, start, patient, rng, users, placer) -> None:
        from scheduling import services as sched

        priority = rng.choices(["ROUTINE", "HIGH", "STAT"], weights=[80, 12, 8])[0]
        lead = (
            timedelta(minutes=rng.randint(10, 25))
            if priority == "STAT"
            else timedelta(hours=rng.uniform(1, 48))
        )
        order = sched.order_create(
            patient=patient,
            procedure_type=pt,
            station=station,
            start=start,
            priority=priority,
            placer_order_number=placer,
            reason="Demo",
            source="seed",
            ordered_at=start - lead,
        )
        proc = order.procedures.get()
        tech = users.get("tech")
        fate = rng.random()
        if fate < 0.05:
            sched.procedure_cancel(
                procedure=proc,
                reason=rng.choice(CANCEL_REASONS),
                actor=tech,
                at=start - timedelta(minutes=30),
            )
            return
        if fate < 0.09:
            return  # no-show: never arrives
        arrived = start + timedelta(minutes=rng.randint(-15, 10))
        started = arrived + timedelta(minutes=rng.randint(3, 20))
        sched.procedure_mark_arrived(procedure=proc, at=arrived, source="seed")
        sched.procedure_start(procedure=proc, at=started, actor=tech, source=f"mpps:{station.ae_title}")
        if fate < 0.11:
            sched.procedure_discontinue(
                procedure=proc, reason="Patient unwell", at=started + timedelta(minutes=5), actor=tech
            )
            return
        completed = started + timedelta(minutes=pt.duration_minutes + rng.randint(-5, 10))
        sched.procedure_complete(procedure=proc, at=completed, actor=tech, source=f"mpps:{station.ae_title}")
        for code, qty, note in USAGE_BY_MODALITY.get(station.modality, []):
            with contextlib.suppress(ApplicationError):
                material_record_usage(
                    procedure=proc,
                    item_code=code,
                    quantity=qty,
                    actor=tech,
                    source="console",
                    notes=note,
                    at=completed,
                )
        sched.procedure_images_available(
            procedure=proc, at=completed + timedelta(minutes=rng.randint(1, 4)), source="seed"
        )
        self._demo_report(proc, rng, users)

    def _demo_report(self, proc, rng, users) -> None:
        """Most exams reported (submitted now; many signed), the rest wait: a real backlog."""
        rad, rev = users.get("radiologist"), users.get("reviewer")
        if rad is None or rev is None or rng.random() < 0.3:
            return
        try:
            from reports import services as rep
        except ImportError:  # pragma: no cover
            return
        report = rep.report_claim(procedure=proc, actor=rad)
        report = rep.report_submit(
            report=report,
            actor=rad,
            findings="No acute abnormality. (demo)",
            impression="Normal study. (demo)",
        )
        if rng.random() < 0.7:
            # The demo reviewer's published demo password (seed_demo prints it).
            rep.report_sign(report=report, actor=rev, password="demo-reviewer")  # noqa: S106

    def _demo_downtime(self, stations, actor) -> None:
        from scheduling.models import StationDowntime
        from scheduling.services import station_add_downtime

        if StationDowntime.objects.exists():
            return
        station = stations[-1]
        day = timezone.localdate() - timedelta(days=1)
        tz = timezone.get_current_timezone()
        start = datetime.combine(day, station.work_start, tzinfo=tz) + timedelta(hours=5)
        station_add_downtime(
            station=station,
            start=start,
            end=start + timedelta(hours=2),
            reason="Detector calibration",
            actor=actor,
            confirm_overlaps=True,  # demo history: yesterday's exams are past anyway
        )
