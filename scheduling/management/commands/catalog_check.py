"""List procedure catalog rows whose code does not obey its VRs (ris/vr.py).

Rows entered before validation existed (the API once accepted private-use characters) would
go out on every worklist; this lists them so an administrator can correct them in the admin.
Exit status 1 when any row is bad (usable in monitoring), 0 otherwise.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ris.vr import code_errors
from scheduling.models import ProcedureType


class Command(BaseCommand):
    help = "List procedure catalog entries whose code value/scheme/meaning violate their VR."

    def handle(self, *args, **options):
        bad = 0
        for ptype in ProcedureType.objects.order_by("pk").iterator():
            errors = code_errors(
                code_value=ptype.code_value,
                coding_scheme=ptype.coding_scheme,
                code_meaning=ptype.code_meaning,
            )
            if not errors:
                continue
            bad += 1
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
            # ascii(): the offending characters are shown as escapes, never sent raw to a terminal.
            self.stdout.write(f"procedure type {ptype.pk} {ptype.code_value!a}: {problems}")
        if bad:
            raise CommandError(f"{bad} procedure catalog entr{'y' if bad == 1 else 'ies'} violate their VR.")
        self.stdout.write("Procedure catalog: every code obeys its VR.")
