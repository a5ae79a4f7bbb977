"""Compare the storage root with the database: orphans, missing files, checksum errors.

    manage.py imaging_storage_check [--verify] [--delete-orphans-older-than HOURS]

Orphans are files no row points to: objects that were never acknowledged (a crash between
the rename and the commit, or a refused object whose removal failed); temporary files in
``tmp/`` are receives a crash interrupted (the sweeper removes them after an hour). Missing files and
checksum mismatches are listed and make the command exit non-zero.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from imaging import storage
from imaging.models import DuplicateConflict, ReceivedObject


class Command(BaseCommand):
    help = "Check the imaging storage root against the database."

    def add_arguments(self, parser):
        parser.add_argument("--verify", action="store_true", help="re-hash every file (slow)")
        parser.add_argument(
            "--delete-orphans-older-than",
            type=float,
            default=None,
            metavar="HOURS",
            help="remove orphan files older than this many hours",
        )

    def handle(self, *args, verify=False, delete_orphans_older_than=None, **options):
        root = storage.storage_root()
        known: dict[str, tuple[str, int]] = {}
        for relpath, sha, size in ReceivedObject.objects.values_list("relpath", "sha256", "size").iterator():
            known[relpath] = (sha, size)
        for relpath, sha, size in DuplicateConflict.objects.values_list(
            "relpath", "sha256", "size"
        ).iterator():
            known[relpath] = (sha, size)
        on_disk = set()
        objects_dir = root / "objects"
        if objects_dir.exists():
            on_disk = {str(p.relative_to(root)) for p in objects_dir.rglob("*.dcm")}
        orphans = sorted(on_disk - known.keys())
        missing = sorted(known.keys() - on_disk)
        bad = []
        for relpath in sorted(on_disk & known.keys()):
            sha, size = known[relpath]
            path = root / relpath
            if path.stat().st_size != size or (verify and storage.sha256_of(relpath) != sha):
                bad.append(relpath)
        tmp_dir = root / "tmp"
        tmp_files = sum(1 for p in tmp_dir.iterdir() if p.is_file()) if tmp_dir.exists() else 0
        removed = 0
        if delete_orphans_older_than is not None:
            removed += storage.tmp_cleanup(older_than=delete_orphans_older_than * 3600)
            cutoff = time.time() - delete_orphans_older_than * 3600
            for relpath in orphans:
                path = root / relpath
                if path.stat().st_mtime < cutoff:
                    storage.remove(relpath)
                    removed += 1
        self.stdout.write(
            f"files {len(on_disk)}, rows {len(known)}, orphans {len(orphans)} (removed {removed}), "
            f"missing {len(missing)}, damaged {len(bad)}, temporary {tmp_files}"
        )
        for relpath in missing:
            self.stdout.write(f"missing: {relpath}")
        for relpath in bad:
            self.stdout.write(f"damaged: {relpath}")
        if missing or bad:
            raise CommandError("storage and database disagree")
