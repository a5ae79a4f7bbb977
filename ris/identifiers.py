"""Identifiers the RIS assigns: MRN, Accession Number, Requested Procedure ID, SPS ID, UIDs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from .vr import SH_MAX, UI_MAX, validate_sh, validate_ui

SEQUENCES = ("accession", "mrn", "rp", "sps", "mpps")


def next_value(name: str) -> int:
    if name not in SEQUENCES:
        raise ValueError(name)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT nextval(%s)", [f"ris_{name}_seq"])
            return cur.fetchone()[0]
    from .models import IdentifierCounter

    with transaction.atomic():
        IdentifierCounter.objects.get_or_create(name=name)
        IdentifierCounter.objects.filter(name=name).update(value=F("value") + 1)
        return IdentifierCounter.objects.values_list("value", flat=True).get(name=name)


def _sh(prefix: str, number: int, width: int) -> str:
    value = f"{prefix}{number:0{width}d}"
    if len(value) > SH_MAX:
        raise ValueError(f"identifier {value!r} exceeds SH length")
    validate_sh(value)
    return value


def new_accession_number() -> str:
    """Accession Number (0008,0050), SH: configurable prefix + zero-padded sequence."""
    prefix = settings.RIS_ACCESSION_PREFIX
    return _sh(prefix, next_value("accession"), max(1, min(10, SH_MAX - len(prefix))))


def new_mrn() -> str:
    prefix = settings.RIS_MRN_PREFIX
    return _sh(prefix, next_value("mrn"), 8)


def new_requested_procedure_id() -> str:
    return _sh("RP", next_value("rp"), 8)


def new_sps_id() -> str:
    return _sh("SPS", next_value("sps"), 8)


def new_uid() -> str:
    """A UID under RIS_UID_ROOT, or 2.25.<UUID> (PS3.5 B.2) when no root is configured."""
    root = settings.RIS_UID_ROOT.strip().rstrip(".")
    number = uuid.uuid4().int
    if not root:
        uid = f"2.25.{number}"
    else:
        room = UI_MAX - len(root) - 1
        uid = f"{root}.{str(number)[:room]}"
    validate_ui(uid)
    return uid
