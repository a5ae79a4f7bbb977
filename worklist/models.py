"""Exam progress: Modality Performed Procedure Steps (PS3.4 Annex F, PS3.3 C.4.13-C.4.17).

A PerformedProcedureStep is what the modality reports it did; the RequestedProcedure (in
``scheduling``) is what was ordered. One MPPS may cover several requested procedures (the
IHE SWF "group case"), and an MPPS that matches nothing is kept with an exception row for
reconciliation instead of being refused.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class MPPSStatus(models.TextChoices):
    # Performed Procedure Step Status (0040,0252), PS3.3 C.4.14.
    IN_PROGRESS = "IN PROGRESS", _("In progress")
    COMPLETED = "COMPLETED", _("Completed")
    DISCONTINUED = "DISCONTINUED", _("Discontinued")


FINAL_MPPS_STATUSES = (MPPSStatus.COMPLETED, MPPSStatus.DISCONTINUED)


class PerformedProcedureStep(models.Model):
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64, unique=True)
    status = models.CharField(
        _("Status"), max_length=16, choices=MPPSStatus.choices, default=MPPSStatus.IN_PROGRESS, db_index=True
    )
    # The association's calling AE (who told us) and the Performed Station AE Title (0040,0241).
    source_ae = models.CharField(_("Calling AE"), max_length=16, blank=True)
    performed_station_ae = models.CharField(_("Performed station AE"), max_length=16, blank=True)
    performed_station_name = models.CharField(_("Performed station name"), max_length=16, blank=True)
    performed_location = models.CharField(_("Performed location"), max_length=16, blank=True)
    station = models.ForeignKey(
        "scheduling.Station", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pps_id = models.CharField(_("Performed Procedure Step ID"), max_length=16, blank=True)
    description = models.CharField(_("Description"), max_length=64, blank=True)
    modality = models.CharField(_("Modality"), max_length=16, blank=True)
    started_at = models.DateTimeField(_("Started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("Ended"), null=True, blank=True)
    # Patient as the modality sent it (the linked procedures' patient is the truth).
    patient = models.ForeignKey(
        "registration.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    dicom_patient_id = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    accession_number = models.CharField(max_length=16, blank=True)
    procedures = models.ManyToManyField(
        "scheduling.RequestedProcedure", blank=True, related_name="performed_steps"
    )
    unscheduled = models.BooleanField(_("Unscheduled"), default=False)
    # PPS Discontinuation Reason Code Sequence (0040,0281), first item.
    discontinuation_code = models.CharField(max_length=16, blank=True)
    discontinuation_scheme = models.CharField(max_length=16, blank=True)
    discontinuation_meaning = models.CharField(_("Discontinuation reason"), max_length=64, blank=True)
    # Performed Series Sequence (0040,0340): [{"series_uid", "modality", "description",
    # "images", "non_image"}] for the image-count check against what arrives.
    performed_series = models.JSONField(default=list, blank=True)
    image_count = models.PositiveIntegerField(_("Images reported"), default=0)
    # Film Consumption (0040,0321) and Billing Supplies and Devices (0040,0324) items.
    consumables = models.JSONField(default=list, blank=True)
    # The attributes as created and last set (DICOM JSON model, PS3.18 F.2): served by N-GET.
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("performed procedure step")
        verbose_name_plural = _("performed procedure steps")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"MPPS {self.sop_instance_uid} {self.status}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_MPPS_STATUSES


class MPPSEvent(models.Model):
    """One row per N-CREATE / N-SET received (what changed, from which AE)."""

    mpps = models.ForeignKey(PerformedProcedureStep, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16)  # create | set
    status = models.CharField(max_length=16)
    source_ae = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("MPPS event")
        verbose_name_plural = _("MPPS events")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.mpps_id} {self.action} {self.status}"


class MPPSExceptionReason(models.TextChoices):
    UNSCHEDULED = "unscheduled", _("No matching scheduled procedure")
    PARTIAL = "partial", _("Some referenced procedures were not found")
    STATE = "state", _("Procedure not in a state that allows this step")
    PATIENT = "patient", _("Patient differs from the scheduled patient")
    GROUP = "group", _("Grouped procedures belong to different patients")


class MPPSException(models.Model):
    """An MPPS that could not be (fully) linked to the schedule: for reconciliation."""

    mpps = models.ForeignKey(PerformedProcedureStep, on_delete=models.CASCADE, related_name="exceptions")
    reason = models.CharField(max_length=16, choices=MPPSExceptionReason.choices)
    message = models.CharField(max_length=255, blank=True)
    source_ae = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("MPPS exception")
        verbose_name_plural = _("MPPS exceptions")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["resolved_at", "created_at"], name="mppsexc_open")]

    def __str__(self) -> str:
        return f"{self.reason} {self.mpps_id}"


class ExamNote(models.Model):
    """What the technologist records about an exam: contrast, films, free text. Append-only."""

    procedure = models.ForeignKey(
        "scheduling.RequestedProcedure", on_delete=models.CASCADE, related_name="exam_notes"
    )
    contrast_agent = models.CharField(_("Contrast agent"), max_length=64, blank=True)
    contrast_dose_ml = models.DecimalField(
        _("Contrast dose (ml)"), max_digits=6, decimal_places=1, null=True, blank=True
    )
    films_printed = models.PositiveSmallIntegerField(_("Films printed"), default=0)
    film_size = models.CharField(_("Film size"), max_length=16, blank=True)
    text = models.TextField(_("Note"), blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("exam note")
        verbose_name_plural = _("exam notes")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.procedure_id} {self.created_at:%Y-%m-%d %H:%M}"


class ScheduledStationAlternate(models.Model):
    """Further Scheduled Station AE Titles (0040,0001 is multi-valued) of an imported SPS.

    The SPS itself is booked on the first AE title's station; the others are kept here so
    that those stations see the step too (worklist scope) and the value round-trips.
    """

    step = models.ForeignKey(
        "scheduling.ScheduledProcedureStep", on_delete=models.CASCADE, related_name="alternate_stations"
    )
    ae_title = models.CharField(max_length=16)
    position = models.PositiveSmallIntegerField(default=1)

    class Meta:
        verbose_name = _("alternate station")
        verbose_name_plural = _("alternate stations")
        ordering = ["step", "position"]
        constraints = [models.UniqueConstraint(fields=["step", "ae_title"], name="uniq_sps_alt_station")]
        indexes = [models.Index(fields=["ae_title"], name="sps_alt_station_ae")]

    def __str__(self) -> str:
        return f"{self.step_id} {self.ae_title}"
