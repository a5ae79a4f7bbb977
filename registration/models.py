"""Patients (DICOM Patient IE, PS3.3 C.7.1.1) with structured, multi-group names."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from ris.vr import (
    join_pn_groups,
    make_pn,
    validate_lo,
    validate_pn_component,
    validate_sh,
)


class Sex(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")
    OTHER = "O", _("Other")


class PregnancyStatus(models.IntegerChoices):
    # Pregnancy Status (0010,21C0), PS3.3 C.7.1.4: 1 not pregnant, 2 possibly, 3 definitely, 4 unknown.
    NOT_PREGNANT = 1, _("Not pregnant")
    POSSIBLY = 2, _("Possibly pregnant")
    DEFINITELY = 3, _("Definitely pregnant")
    UNKNOWN = 4, _("Unknown")


def _pn_field(label):
    return models.CharField(label, max_length=64, blank=True, validators=[validate_pn_component])


class Patient(models.Model):
    patient_id = models.CharField(_("Patient ID"), max_length=64, validators=[validate_lo])
    issuer = models.CharField(_("Issuer of Patient ID"), max_length=64, validators=[validate_lo])

    # Alphabetic component group (family^given^middle^prefix^suffix).
    family_name = _pn_field(_("Family name"))
    given_name = _pn_field(_("Given name"))
    middle_name = _pn_field(_("Middle name"))
    name_prefix = _pn_field(_("Prefix"))
    name_suffix = _pn_field(_("Suffix"))
    # Ideographic (汉字) and phonetic groups.
    ideographic_family = _pn_field(_("Family name (characters)"))
    ideographic_given = _pn_field(_("Given name (characters)"))
    phonetic_family = _pn_field(_("Family name (phonetic)"))
    phonetic_given = _pn_field(_("Given name (phonetic)"))
    # Denormalised DICOM PN groups, maintained by save(): the MWL matches and returns these.
    pn_alphabetic = models.CharField(max_length=64, blank=True, editable=False)
    pn_ideographic = models.CharField(max_length=64, blank=True, editable=False)
    pn_phonetic = models.CharField(max_length=64, blank=True, editable=False)
    # Lower-case names without separators ("wangxiaodong 王小东") for free-text search.
    search_compact = models.CharField(max_length=255, blank=True, editable=False)

    birth_date = models.DateField(_("Birth date"), null=True, blank=True)
    sex = models.CharField(_("Sex"), max_length=1, choices=Sex.choices, blank=True)
    phone = models.CharField(_("Phone"), max_length=32, blank=True, validators=[validate_sh])
    address = models.CharField(_("Address"), max_length=255, blank=True)
    other_ids = models.JSONField(_("Other IDs"), default=list, blank=True)
    medical_alerts = models.CharField(
        _("Medical alerts"), max_length=64, blank=True, validators=[validate_lo]
    )
    allergies = models.CharField(_("Allergies"), max_length=64, blank=True, validators=[validate_lo])
    pregnancy_status = models.PositiveSmallIntegerField(
        _("Pregnancy status"), choices=PregnancyStatus.choices, null=True, blank=True
    )
    is_temporary = models.BooleanField(_("Temporary registration"), default=False)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        ordering = ["family_name", "given_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "patient_id"], name="uniq_patient_id_issuer")
        ]
        indexes = [
            models.Index(Upper("pn_alphabetic"), name="patient_pn_alpha_upper"),
            models.Index(fields=["pn_ideographic"], name="patient_pn_ideo"),
            models.Index(fields=["birth_date"], name="patient_birth_date"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def refresh_pn(self) -> None:
        self.pn_alphabetic = make_pn(
            self.family_name, self.given_name, self.middle_name, self.name_prefix, self.name_suffix
        )
        self.pn_ideographic = make_pn(self.ideographic_family, self.ideographic_given)
        self.pn_phonetic = make_pn(self.phonetic_family, self.phonetic_given)
        self.search_compact = " ".join(
            part
            for part in [
                f"{self.family_name}{self.given_name}".lower(),
                f"{self.given_name}{self.family_name}".lower(),
                f"{self.ideographic_family}{self.ideographic_given}",
                f"{self.phonetic_family}{self.phonetic_given}".lower(),
            ]
            if part
        )[:255]

    def save(self, *args, **kwargs):
        self.refresh_pn()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = set(kwargs["update_fields"]) | {
                "pn_alphabetic",
                "pn_ideographic",
                "pn_phonetic",
                "search_compact",
            }
        super().save(*args, **kwargs)

    @property
    def dicom_name(self) -> str:
        """The full PN value with all groups, e.g. ``Wang^XiaoDong=王^小东``."""
        return join_pn_groups(self.pn_alphabetic, self.pn_ideographic, self.pn_phonetic)

    @property
    def display_name(self) -> str:
        alpha = " ".join(p for p in [self.family_name.upper(), self.given_name] if p)
        ideo = f"{self.ideographic_family}{self.ideographic_given}"
        if ideo and alpha:
            return f"{ideo} ({alpha})"
        return ideo or alpha or self.patient_id
