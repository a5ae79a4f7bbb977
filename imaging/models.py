"""What the RIS receives and indexes: the durable ingest outbox and the DICOM study index.

``ReceivedObject`` is the outbox: one row per stored object, written in the same
transaction that makes the acknowledgement possible (DESIGN.md §4). The Celery ingest turns
``received`` rows into ``Study``/``Series``/``Instance`` (PS3.3 C.7.2-C.7.6: the Patient
level is carried on the Study as received, the registered patient is a foreign key) and
links studies to ``scheduling.RequestedProcedure``. Files are named by us, never by a
received value; ``relpath`` is relative to ``settings.RIS_STORAGE_ROOT``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ObjectState(models.TextChoices):
    RECEIVED = "received", _("Received")
    INDEXED = "indexed", _("Indexed")
    DEAD = "dead", _("Dead (gave up)")


class ReceivedObject(models.Model):
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64, unique=True)
    sop_class_uid = models.CharField(_("SOP Class UID"), max_length=64)
    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64, db_index=True)
    series_instance_uid = models.CharField(_("Series Instance UID"), max_length=64)
    transfer_syntax_uid = models.CharField(_("Transfer Syntax UID"), max_length=64)
    relpath = models.CharField(max_length=255, unique=True)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    calling_ae = models.CharField(_("Calling AE"), max_length=16, blank=True)
    source = models.CharField(max_length=8, default="dimse", help_text="dimse or stow")
    state = models.CharField(max_length=10, choices=ObjectState.choices, default=ObjectState.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(db_index=True)
    # When a task was last asked to index it: the sweeper's lease runs from here.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("received object")
        verbose_name_plural = _("received objects")
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["state", "enqueued_at"],
                name="recv_pending",
                condition=models.Q(state="received"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} {self.state}"


class DuplicateConflict(models.Model):
    """A second object with a known SOP Instance UID but different bytes.

    The first object stays the indexed one; the second is kept on disk (quarantined) so a
    person can compare them. Shown on the reconciliation workbench and the study page.
    """

    original = models.ForeignKey(ReceivedObject, on_delete=models.PROTECT, related_name="conflicts")
    relpath = models.CharField(max_length=255, unique=True)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    transfer_syntax_uid = models.CharField(max_length=64)
    calling_ae = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=8, default="dimse")
    received_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("duplicate conflict")
        verbose_name_plural = _("duplicate conflicts")
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["original", "sha256"], name="uniq_conflict_per_content")
        ]

    def __str__(self) -> str:
        return f"conflict {self.original_id} {self.sha256[:12]}"


class Study(models.Model):
    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64, unique=True)
    accession_number = models.CharField(_("Accession Number"), max_length=16, blank=True, db_index=True)
    accession_issuer = models.CharField(_("Issuer of Accession Number"), max_length=64, blank=True)
    study_id = models.CharField(_("Study ID"), max_length=16, blank=True)
    study_date = models.DateField(_("Study date"), null=True, blank=True)
    study_time = models.CharField(_("Study time"), max_length=16, blank=True)
    description = models.CharField(_("Study description"), max_length=64, blank=True)
    modalities = models.CharField(_("Modalities in study"), max_length=64, blank=True)
    referring_physician = models.CharField(_("Referring physician"), max_length=200, blank=True)
    specific_character_set = models.CharField(max_length=64, blank=True)
    # Patient level (PS3.3 C.7.1.1) as the modality sent it.
    dicom_patient_id = models.CharField(_("Patient ID"), max_length=64, blank=True, db_index=True)
    issuer_of_patient_id = models.CharField(_("Issuer of Patient ID"), max_length=64, blank=True)
    patient_name = models.CharField(_("Patient's name"), max_length=200, blank=True)
    patient_birth_date = models.DateField(_("Birth date"), null=True, blank=True)
    patient_sex = models.CharField(_("Sex"), max_length=16, blank=True)
    patient_age = models.CharField(_("Patient's age"), max_length=4, blank=True)
    # The registered patient: the linked order's patient, else an exact ID + issuer match.
    patient = models.ForeignKey(
        "registration.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="studies"
    )
    requested_procedure = models.ForeignKey(
        "scheduling.RequestedProcedure",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="studies",
    )
    source_ae = models.CharField(_("Sent by"), max_length=16, blank=True)
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    first_received_at = models.DateTimeField(null=True, blank=True)
    last_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.study_instance_uid

    @property
    def name_groups(self) -> list[str]:
        return self.patient_name.split("=")


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(_("Series Instance UID"), max_length=64, unique=True)
    series_number = models.IntegerField(_("Series number"), null=True, blank=True)
    modality = models.CharField(_("Modality"), max_length=16, blank=True)
    body_part = models.CharField(_("Body part examined"), max_length=16, blank=True)
    patient_position = models.CharField(_("Patient position"), max_length=16, blank=True)
    view_position = models.CharField(_("View position"), max_length=16, blank=True)
    series_date = models.DateField(null=True, blank=True)
    series_time = models.CharField(max_length=16, blank=True)
    description = models.CharField(_("Series description"), max_length=64, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    # QC facts, recomputed after each ingest of the series (imaging.qc).
    qc = models.JSONField(default=dict, blank=True)
    qc_flagged = models.BooleanField(default=False, db_index=True)
    thumbnail_instance = models.ForeignKey(
        "Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("series")
        verbose_name_plural = _("series")
        ordering = ["series_number", "id"]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    received_object = models.OneToOneField(ReceivedObject, on_delete=models.PROTECT, related_name="instance")
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64, unique=True)
    sop_class_uid = models.CharField(_("SOP Class UID"), max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    image_type = models.CharField(max_length=128, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    photometric_interpretation = models.CharField(max_length=16, blank=True)
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    rescale_slope = models.FloatField(null=True, blank=True)
    rescale_intercept = models.FloatField(null=True, blank=True)
    rescale_type = models.CharField(max_length=16, blank=True)
    image_position = models.JSONField(null=True, blank=True)  # [x, y, z] mm
    image_orientation = models.JSONField(null=True, blank=True)  # 6 direction cosines
    pixel_spacing = models.JSONField(null=True, blank=True)  # [row, column] mm
    slice_thickness = models.FloatField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        ordering = ["instance_number", "id"]

    def __str__(self) -> str:
        return self.sop_instance_uid


class LinkMethod(models.TextChoices):
    ACCESSION = "accession", _("Automatic: Accession Number")
    STUDY_UID = "study_uid", _("Automatic: Study Instance UID")
    ORDER_CREATED = "order_created", _("Automatic: order created later")
    MANUAL = "manual", _("Manual (reconciliation)")


class StudyLink(models.Model):
    """Link provenance: which study was tied to which procedure, how, by whom, until when."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="links")
    requested_procedure = models.ForeignKey(
        "scheduling.RequestedProcedure", on_delete=models.PROTECT, related_name="study_links"
    )
    method = models.CharField(max_length=16, choices=LinkMethod.choices)
    linked_at = models.DateTimeField()
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unlinked_at = models.DateTimeField(null=True, blank=True)
    unlinked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("study link")
        verbose_name_plural = _("study links")
        ordering = ["-linked_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(unlinked_at__isnull=True),
                name="one_active_link_per_study",
            )
        ]

    def __str__(self) -> str:
        return f"{self.study_id} -> {self.requested_procedure_id} ({self.method})"


class ReconciliationReason(models.TextChoices):
    NO_ACCESSION = "no_accession", _("No Accession Number in the images")
    UNKNOWN_ACCESSION = "unknown_accession", _("No order has this Accession Number")
    ISSUER_MISMATCH = "issuer_mismatch", _("Accession Number issued by another system")
    PATIENT_MISMATCH = "patient_mismatch", _("Patient ID differs from the order's patient")
    STUDY_UID_MISMATCH = "study_uid_mismatch", _("Study Instance UID differs from the order's")
    AMBIGUOUS = "ambiguous", _("Several procedures match")
    PROCEDURE_CLOSED = "procedure_closed", _("The order is cancelled or discontinued")
    ALREADY_LINKED = "already_linked", _("Another study is already linked to the procedure")
    INCONSISTENT = "inconsistent", _("Objects of the study disagree on patient or accession")
    UNLINKED = "unlinked", _("Unlinked by a user")


class ReconciliationItem(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reconciliation_items")
    reason = models.CharField(max_length=24, choices=ReconciliationReason.choices)
    detail = models.JSONField(default=dict, blank=True)
    source_ae = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("reconciliation item")
        verbose_name_plural = _("reconciliation items")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_item_per_study",
            )
        ]

    def __str__(self) -> str:
        return f"{self.study_id} {self.reason}"
