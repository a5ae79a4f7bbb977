"""``manage.py import_worklists PATH…``: migrate DCMTK/Orthanc worklist files into the RIS."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from worklist.importer import import_worklists


class Command(BaseCommand):
    help = (
        "Import DICOM worklist files (wlmscpfs / Orthanc .wl) as patients, orders, requested "
        "procedures and scheduled steps, keeping their identifiers. Directories are searched for *.wl."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="worklist files or directories")
        parser.add_argument(
            "--create-stations",
            action="store_true",
            help="create stations for unknown Scheduled Station AE Titles",
        )
        parser.add_argument("--dry-run", action="store_true", help="check every file, write nothing")

    def handle(self, *args, **options):
        results = import_worklists(
            options["paths"], create_stations=options["create_stations"], dry_run=options["dry_run"]
        )
        if not results:
            raise CommandError("No worklist files found.")
        for r in results:
            if r.ok:
                self.stdout.write(f"OK      {r.name}: accession {r.accession_number}")
                for w in r.warnings:
                    self.stdout.write(f"        warning: {w}")
            else:
                self.stdout.write(self.style.ERROR(f"FAILED  {r.name}: {r.message}"))
        failed = sum(not r.ok for r in results)
        verb = "checked" if options["dry_run"] else "imported"
        summary = f"{len(results) - failed} of {len(results)} file(s) {verb}; {failed} failed."
        if failed:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
