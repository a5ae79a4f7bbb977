"""Give one CT exam on the reading worklist a realistic demo volume (run by ``make run``).

    manage.py seed_viewer_demo [--slices 100] [--size 256]

A synthetic phantom (soft tissue, a bright sphere, an air cavity; 256×256 × 100 slices of
0.8 mm × 2 mm by default) carrying the exam's identifiers, stored through the normal ingest
service (durable write, index, link by Accession Number), so the exam opens in the viewer from
the reading worklist. Idempotent: an exam that already has images is left alone.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db.models import Q

from viewer import demo


class Command(BaseCommand):
    help = "Attach a synthetic CT volume to a CT exam on the reading worklist."

    def add_arguments(self, parser):
        parser.add_argument("--slices", type=int, default=100)
        parser.add_argument("--size", type=int, default=256)

    def handle(self, *args, slices, size, **options):
        from imaging.models import Study
        from scheduling.models import ProcedureStatus, RequestedProcedure

        demo_uids = Study.objects.filter(description__startswith=demo.DEMO_PREFIX).values_list(
            "requested_procedure_id", flat=True
        )
        if Study.objects.filter(description__startswith=demo.DEMO_PREFIX).exists():
            self.stdout.write(f"viewer demo volume present (exam {next(iter(demo_uids), '?')})")
            return
        procedure = (
            RequestedProcedure.objects.select_related("order__patient", "procedure_type")
            .filter(procedure_type__modality="CT")
            .filter(Q(images_available_at__isnull=False) | Q(status=ProcedureStatus.COMPLETED))
            .exclude(status=ProcedureStatus.CANCELLED)
            .exclude(report__status__in=["final", "amended", "preliminary"])
            .filter(studies__isnull=True)
            .order_by("-order__priority", "pk")
            .first()
        )
        if procedure is None:
            self.stdout.write("no CT exam on the reading worklist to attach the demo volume to")
            return
        pixel = round(256 * 0.8 / size, 4)
        phantom = demo.Phantom(
            rows=size,
            columns=size,
            slices=slices,
            pixel_spacing=pixel,
            origin=(-size * pixel / 2, -size * pixel / 2, -slices * 1.0),
        )
        uid = demo.receive_and_ingest(
            demo.for_procedure(
                procedure, phantom, description=f"{demo.DEMO_PREFIX} {procedure.description}"[:64]
            )
        )
        self.stdout.write(
            f"viewer demo: {slices} slices of {size}×{size} for {procedure.order.accession_number} "
            f"(open it from the reading worklist; /viewer/studies/{uid}/)"
        )
