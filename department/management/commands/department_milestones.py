"""Bring the turnaround milestone table up to date (or rebuild it from the event logs)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from department.services import milestones_rebuild, milestones_sync


class Command(BaseCommand):
    help = (
        "Run the backstop sync now (default; the beat job department.milestones_sync does it every"
        " RIS_MILESTONE_SYNC_SECONDS) or --rebuild the turnaround milestones from the procedure and"
        " report event logs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="recompute every procedure")

    def handle(self, *args, **options):
        n = milestones_rebuild(stdout=self.stdout) if options["rebuild"] else milestones_sync()
        self.stdout.write(self.style.SUCCESS(f"milestones: {n} procedures refreshed"))
