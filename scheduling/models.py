"""Stations, the procedure catalog and the order hierarchy of IHE Scheduled Workflow.

Order (Imaging Service Request) → RequestedProcedure → ScheduledProcedureStep, as in
DICOM PS3.3 C.4.10-C.4.12 / PS3.4 Annex K. The RequestedProcedure carries the lifecycle
status; the SPS mirrors it in DICOM terms for the worklist.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ris.append_only import AppendOnlyModel
from ris.vr import validate_ae, validate_cs, validate_lo, validate_pn, validate_sh, validate_ui


class Modality(models.TextChoices):
    CT = "CT", "CT"
    MR = "MR", "MR"
    DX = "DX", "DX"
    CR = "CR", "CR"
    US = "US", "US"
    MG = "MG", "MG"
    NM = "NM", "NM"
    PT = "PT", "PT"
    XA = "XA", "XA"
    RF = "RF", "RF"
    OT = "OT", "OT"


class CharsetProfile(models.TextChoices):
    UTF8 = "ISO_IR 192", "ISO_IR 192 (UTF-8)"
    GB18030 = "GB18030", "GB18030"
    LATIN1 = "ISO_IR 100", "ISO_IR 100 (Latin-1)"
    ASCII_PINYIN = "ASCII", _("ASCII only (pinyin)")


class WorklistScope(models.TextChoices):
    STATION = "station", _("Own station only")
    MODALITY = "modality", _("Same modality")
    ALL = "all", _("All stations")


class Station(models.Model):
    ae_title = models.CharField(_("AE title"), max_length=16, unique=True, validators=[validate_ae])
    name = models.CharField(_("Station name"), max_length=16, validators=[validate_sh])
    modality = models.CharField(
        _("Modality"), max_length=16, choices=Modality.choices, validators=[validate_cs]
    )
    room = models.CharField(_("Room / location"), max_length=16, blank=True, validators=[validate_sh])
    host = models.CharField(
        _("Host binding"),
        max_length=255,
        blank=True,
        help_text=_("If set, associations from this AE title are accepted only from this address."),
    )
    charset_profile = models.CharField(
        _("Character set"), max_length=16, choices=CharsetProfile.choices, default=CharsetProfile.UTF8
    )
    worklist_scope = models.CharField(
        _("Worklist scope"), max_length=16, choices=WorklistScope.choices, default=WorklistScope.STATION
    )
    work_start = models.TimeField(_("Working hours from"), default=time(8, 0))
    work_end = models.TimeField(_("Working hours to"), default=time(18, 0))
    slot_minutes = models.PositiveSmallIntegerField(_("Slot length (minutes)"), default=15)
    active = models.BooleanField(_("Active"), default=True)

    class Meta:
        verbose_name = _("station")
        verbose_name_plural = _("stations")
        ordering = ["modality", "ae_title"]

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.modality})"

    @property
    def open_minutes(self) -> int:
        """Minutes open per day. ``work_end <= work_start`` means the shift runs past midnight;
        equal times mean open around the clock (an emergency CT)."""
        start = self.work_start.hour * 60 + self.work_start.minute
        end = self.work_end.hour * 60 + self.work_end.minute
        return (end - start) % (24 * 60) or 24 * 60

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The opening that starts on ``day`` (local time), as aware datetimes."""
        open_at = datetime.combine(day, self.work_start, tzinfo=timezone.get_current_timezone())
        return open_at, open_at + timedelta(minutes=self.open_minutes)

    def fits(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) lies inside one opening (that day's, or the previous day's shift)."""
        if self.open_minutes == 24 * 60:
            return end > start
        day = timezone.localtime(start).date()
        for d in (day, day - timedelta(days=1)):
            open_at, close_at = self.window(d)
            if open_at <= start and end <= close_at:
                return True
        return False


class StationDowntime(models.Model):
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="downtimes")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = _("station downtime")
        verbose_name_plural = _("station downtimes")
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="downtime_end_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.station.ae_title} {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M}"


class ProcedureType(models.Model):
    code_value = models.CharField(_("Code"), max_length=16, validators=[validate_sh])
    coding_scheme = models.CharField(
        _("Coding scheme"), max_length=16, default="99RIS", validators=[validate_sh]
    )
    code_meaning = models.CharField(_("Meaning"), max_length=64, validators=[validate_lo])
    # What Chinese-speaking staff read on the pages; DICOM (MWL, studies) keeps code_meaning,
    # which every station's character set can carry.
    name_zh = models.CharField(_("Name (Simplified Chinese)"), max_length=64, blank=True)
    modality = models.CharField(_("Modality"), max_length=16, choices=Modality.choices)
    body_part = models.CharField(_("Body part"), max_length=16, blank=True, validators=[validate_cs])
    duration_minutes = models.PositiveSmallIntegerField(_("Duration (minutes)"), default=15)
    preparation = models.TextField(_("Preparation instructions"), blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("procedure type")
        verbose_name_plural = _("procedure types")
        ordering = ["modality", "code_meaning"]
        constraints = [
            models.UniqueConstraint(fields=["coding_scheme", "code_value"], name="uniq_procedure_code")
        ]

    def __str__(self) -> str:
        return f"{self.code_value} {self.display_name}"

    @property
    def display_name(self) -> str:
        """The name in the page's language: ``name_zh`` for 简体中文 when set, else the code meaning."""
        from django.utils.translation import get_language

        if self.name_zh and (get_language() or "").lower().startswith("zh"):
            return self.name_zh
        return self.code_meaning

    def clean(self):
        # The code goes out on every worklist: validate it against its VRs (ris/vr.py) at
        # every entry (admin, import, API); `manage.py catalog_check` lists older bad rows.
        from django.core.exceptions import ValidationError

        from ris.vr import code_errors

        errors = code_errors(
            code_value=self.code_value, coding_scheme=self.coding_scheme, code_meaning=self.code_meaning
        )
        if errors:
            raise ValidationError(errors)


class Priority(models.TextChoices):
    # Requested Procedure Priority (0040,1003), PS3.3 C.4.11.
    STAT = "STAT", _("STAT")
    HIGH = "HIGH", _("High")
    ROUTINE = "ROUTINE", _("Routine")
    MEDIUM = "MEDIUM", _("Medium")
    LOW = "LOW", _("Low")


PRIORITY_RANK = {"STAT": 0, "HIGH": 1, "ROUTINE": 2, "MEDIUM": 3, "LOW": 4}


class Order(models.Model):
    """Imaging Service Request."""

    patient = models.ForeignKey("registration.Patient", on_delete=models.PROTECT, related_name="orders")
    accession_number = models.CharField(
        _("Accession Number"), max_length=16, unique=True, validators=[validate_sh]
    )
    priority = models.CharField(
        _("Priority"), max_length=8, choices=Priority.choices, default=Priority.ROUTINE
    )
    referring_physician = models.CharField(
        _("Referring physician"), max_length=64, blank=True, validators=[validate_pn]
    )
    requesting_physician = models.CharField(
        _("Requesting physician"), max_length=64, blank=True, validators=[validate_pn]
    )
    requesting_service = models.CharField(
        _("Requesting service"), max_length=64, blank=True, validators=[validate_lo]
    )
    reason = models.CharField(
        _("Reason for the procedure"), max_length=64, blank=True, validators=[validate_lo]
    )
    clinical_info = models.TextField(_("Clinical information"), blank=True)
    placer_order_number = models.CharField(
        _("Placer order number"), max_length=64, blank=True, validators=[validate_lo]
    )
    # Namespace of the placer number (HL7 EI.2, FHIR identifier.system) for orders placed by
    # another system; unique together with the number for those.
    placer_authority = models.CharField(
        _("Placer authority"), max_length=64, blank=True, validators=[validate_lo]
    )
    filler_order_number = models.CharField(
        _("Filler order number"), max_length=64, blank=True, validators=[validate_lo]
    )
    admission_id = models.CharField(_("Admission ID"), max_length=64, blank=True, validators=[validate_lo])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["placer_order_number"], name="order_placer_number")]
        constraints = [
            models.UniqueConstraint(
                fields=["placer_authority", "placer_order_number"],
                condition=~models.Q(placer_authority=""),
                name="uniq_external_placer_order",
            )
        ]

    def __str__(self) -> str:
        return self.accession_number


class ProcedureStatus(models.TextChoices):
    # An order placed without a slot (HL7 ORM, FHIR ServiceRequest): identifiers assigned,
    # its step has no station/time yet and is never on a worklist until booked.
    REQUESTED = "requested", _("Awaiting booking")
    SCHEDULED = "scheduled", _("Scheduled")
    ARRIVED = "arrived", _("Arrived")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    DISCONTINUED = "discontinued", _("Discontinued")
    CANCELLED = "cancelled", _("Cancelled")


class SPSStatus(models.TextChoices):
    # Scheduled Procedure Step Status (0040,0020), PS3.3 C.4.10.
    SCHEDULED = "SCHEDULED", "SCHEDULED"
    ARRIVED = "ARRIVED", "ARRIVED"
    STARTED = "STARTED", "STARTED"
    COMPLETED = "COMPLETED", "COMPLETED"
    DISCONTINUED = "DISCONTINUED", "DISCONTINUED"
    CANCELED = "CANCELED", "CANCELED"


FINAL_SPS_STATUSES = (SPSStatus.COMPLETED, SPSStatus.DISCONTINUED, SPSStatus.CANCELED)


class RequestedProcedure(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="procedures")
    procedure_type = models.ForeignKey(ProcedureType, on_delete=models.PROTECT, related_name="+")
    requested_procedure_id = models.CharField(
        _("Requested Procedure ID"), max_length=16, unique=True, validators=[validate_sh]
    )
    study_instance_uid = models.CharField(
        _("Study Instance UID"), max_length=64, unique=True, validators=[validate_ui]
    )
    description = models.CharField(max_length=64, blank=True, validators=[validate_lo])
    status = models.CharField(
        max_length=16, choices=ProcedureStatus.choices, default=ProcedureStatus.SCHEDULED, db_index=True
    )
    # Convenience copies of the event log's latest times (the log is the truth for TAT).
    arrived_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    images_available_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=255, blank=True)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("requested procedure")
        verbose_name_plural = _("requested procedures")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.requested_procedure_id} {self.status}"


class ScheduledProcedureStep(models.Model):
    requested_procedure = models.ForeignKey(
        RequestedProcedure, on_delete=models.CASCADE, related_name="steps"
    )
    sps_id = models.CharField(_("SPS ID"), max_length=16, unique=True, validators=[validate_sh])
    # station/start/end are null only while the procedure is awaiting booking (status
    # ``requested``); the MWL and the overlap constraint ignore such steps.
    station = models.ForeignKey(
        Station, on_delete=models.PROTECT, related_name="steps", null=True, blank=True
    )
    modality = models.CharField(max_length=16, validators=[validate_cs])
    start = models.DateTimeField(db_index=True, null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=SPSStatus.choices, default=SPSStatus.SCHEDULED)
    description = models.CharField(max_length=64, blank=True, validators=[validate_lo])
    performing_physician = models.CharField(max_length=64, blank=True, validators=[validate_pn])
    pre_medication = models.CharField(max_length=64, blank=True, validators=[validate_lo])
    contrast_agent = models.CharField(max_length=64, blank=True, validators=[validate_lo])
    # True when the step was booked on the calendar and occupies its slot exclusively (the
    # database refuses overlaps among these). Steps imported from an existing schedule (file
    # worklists, HL7) keep their times even where they overlap, as the modality had them.
    exclusive_slot = models.BooleanField(default=True, db_default=True)

    class Meta:
        verbose_name = _("scheduled procedure step")
        verbose_name_plural = _("scheduled procedure steps")
        ordering = ["start"]
        indexes = [
            models.Index(fields=["station", "start"], name="sps_station_start"),
            models.Index(fields=["modality", "start"], name="sps_modality_start"),
            models.Index(fields=["status", "start"], name="sps_status_start"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="sps_end_after_start"),
            # Booked (station, start, end all set) or awaiting booking (all null).
            models.CheckConstraint(
                condition=models.Q(station__isnull=False, start__isnull=False, end__isnull=False)
                | models.Q(station__isnull=True, start__isnull=True, end__isnull=True),
                name="sps_booked_or_unbooked",
            ),
        ]

    @property
    def is_booked(self) -> bool:
        return self.start is not None

    def __str__(self) -> str:
        if self.start is None:
            return f"{self.sps_id} (awaiting booking)"
        return f"{self.sps_id} {self.station_id} {self.start:%Y-%m-%d %H:%M}"


class ProcedureEvent(AppendOnlyModel):
    """One row per lifecycle transition: the source of turnaround times and the audit story.

    Append-only (Python and a PostgreSQL trigger): the referenced procedure and actor are
    protected, so no cascade or SET NULL rewrites the evidence.
    """

    requested_procedure = models.ForeignKey(
        RequestedProcedure, on_delete=models.PROTECT, related_name="events"
    )
    action = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=32, blank=True, help_text="ui, api, mpps:<AE>, ingest…")
    reason = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("procedure event")
        verbose_name_plural = _("procedure events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["to_status", "at"], name="procevent_status_at")]

    def __str__(self) -> str:
        return f"{self.requested_procedure_id} {self.from_status}->{self.to_status}"
