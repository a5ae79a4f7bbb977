"""Writes over patients: registration, demographic updates, merge."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.services import audit_record
from ris.errors import ApplicationError, Conflict
from ris.identifiers import new_mrn

from . import signals
from .models import Patient
from .names import has_han, romanise_name, split_chinese_name

EDITABLE_FIELDS = (
    "family_name",
    "given_name",
    "middle_name",
    "name_prefix",
    "name_suffix",
    "ideographic_family",
    "ideographic_given",
    "phonetic_family",
    "phonetic_given",
    "birth_date",
    "sex",
    "phone",
    "address",
    "other_ids",
    "medical_alerts",
    "allergies",
    "pregnancy_status",
    "is_temporary",
)


def normalise_name_fields(data: dict) -> dict:
    """Fill the name groups from what the user typed.

    - ``chinese_name`` (full characters, e.g. 王小东) is split into ideographic family/given.
    - Chinese typed into the alphabetic fields moves to the ideographic group.
    - When the alphabetic group is empty but characters are present, it is filled with
      pinyin (editable afterwards).
    """
    data = dict(data)
    chinese = (data.pop("chinese_name", "") or "").strip()
    if chinese and not (data.get("ideographic_family") or data.get("ideographic_given")):
        data["ideographic_family"], data["ideographic_given"] = split_chinese_name(chinese)
    fam, giv = data.get("family_name", "") or "", data.get("given_name", "") or ""
    if has_han(fam) or has_han(giv):
        if not (data.get("ideographic_family") or data.get("ideographic_given")):
            if fam and not giv:
                fam, giv = split_chinese_name(fam)
            data["ideographic_family"], data["ideographic_given"] = fam, giv
        data["family_name"], data["given_name"] = "", ""
    ifam, igiv = data.get("ideographic_family", ""), data.get("ideographic_given", "")
    if not (data.get("family_name") or data.get("given_name")) and (ifam or igiv):
        data["family_name"], data["given_name"] = romanise_name(ifam, igiv)
    return data


def _validate(patient: Patient) -> None:
    if not (patient.family_name or patient.given_name or patient.ideographic_family):
        raise ValidationError({"family_name": ["A family name (or a Chinese name) is required."]})
    if patient.birth_date and patient.birth_date > date.today():
        raise ValidationError({"birth_date": ["Birth date is in the future."]})
    patient.refresh_pn()
    errors: dict[str, list[str]] = {}
    for group, value in (
        ("family_name", patient.pn_alphabetic),
        ("ideographic_family", patient.pn_ideographic),
        ("phonetic_family", patient.pn_phonetic),
    ):
        if len(value) > 64:
            errors.setdefault(group, []).append("The name group is longer than 64 characters.")
    if errors:
        raise ValidationError(errors)
    patient.full_clean(exclude=["merged_into"], validate_unique=False, validate_constraints=False)


@transaction.atomic
def patient_register(*, actor, request=None, patient_id: str = "", issuer: str = "", **fields):
    """Register a patient. An MRN is generated when none is given."""
    fields = normalise_name_fields(fields)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}")
    patient = Patient(
        patient_id=(patient_id or "").strip() or new_mrn(),
        issuer=(issuer or "").strip() or settings.RIS_ISSUER_OF_PATIENT_ID,
        **fields,
    )
    _validate(patient)
    if Patient.objects.filter(issuer=patient.issuer, patient_id=patient.patient_id).exists():
        raise Conflict(
            "A patient with this ID already exists for this issuer.",
            fields={"patient_id": ["Already registered."]},
        )
    try:
        with transaction.atomic():
            patient.save(force_insert=True)
    except IntegrityError as exc:
        raise Conflict("A patient with this ID already exists for this issuer.") from exc
    audit_record(
        action="patient.create",
        actor=actor,
        request=request,
        object_type="patient",
        object_id=patient.pk,
        patient_id=patient.pk,
    )
    return patient


@transaction.atomic
def patient_update(*, patient: Patient, actor, request=None, **fields) -> Patient:
    fields = normalise_name_fields(fields)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}")
    changed = []
    for name, value in fields.items():
        if getattr(patient, name) != value:
            setattr(patient, name, value)
            changed.append(name)
    if changed:
        _validate(patient)
        patient.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action="patient.update",
        actor=actor,
        request=request,
        object_type="patient",
        object_id=patient.pk,
        patient_id=patient.pk,
        detail={"fields": sorted(changed)},
    )
    return patient


@transaction.atomic
def patient_merge(*, source: Patient, target: Patient, actor, request=None) -> Patient:
    """Merge a (temporary) registration into the surviving patient (IHE PIR).

    Orders move to the target; the source row remains, pointing at the target, so every
    past reference and audit event stays resolvable.
    """
    if source.pk == target.pk:
        raise ApplicationError("A patient cannot be merged into itself.")
    updated = Patient.objects.filter(pk=source.pk, merged_into__isnull=True).update(merged_into=target)
    if not updated:
        raise Conflict("This patient has already been merged.")
    if target.merged_into_id:
        raise ApplicationError("The target patient has itself been merged.")
    # The owners of patient-linked rows move them (scheduling: the orders), see signals.py.
    moved: dict[str, int] = {"orders_moved": 0}
    for _receiver, counts in signals.patient_merging.send(
        sender=Patient, source_patient_id=source.pk, target_patient_id=target.pk
    ):
        if isinstance(counts, dict):
            for name, count in counts.items():
                moved[name] = moved.get(name, 0) + count
    audit_record(
        action="patient.merge",
        actor=actor,
        request=request,
        object_type="patient",
        object_id=source.pk,
        patient_id=target.pk,
        detail={"source": source.pk, "target": target.pk, **moved},
    )
    source.refresh_from_db()
    return target
