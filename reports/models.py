"""Reports: templates, the report and its immutable versions, signatures, addenda,
critical results, peer review and the release log.

Report.status: draft -> preliminary -> final -> amended (addenda), preliminary -> draft on
return. Text that has been signed never changes: ReportVersion, Signature, Addendum and
ReportRelease rows are insert-only (the model refuses updates; on PostgreSQL a trigger refuses
them in the database, see migrations/0002), and the Report row's text columns are frozen once
the report is final.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ris.append_only import AppendOnlyModel

USER = settings.AUTH_USER_MODEL


class ReportStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PRELIMINARY = "preliminary", _("Preliminary")
    FINAL = "final", _("Final")
    AMENDED = "amended", _("Amended")


SIGNED_STATUSES = (ReportStatus.FINAL, ReportStatus.AMENDED)


class InsertOnlyModel(models.Model):
    """Rows are written once and never changed (the database enforces it on PostgreSQL)."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError(f"{type(self).__name__} rows are immutable.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} rows are immutable.")


class ReportTemplate(models.Model):
    """Admin-editable starting text per procedure type or modality (most specific wins)."""

    name = models.CharField(_("Name"), max_length=128)
    procedure_type = models.ForeignKey(
        "scheduling.ProcedureType", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    modality = models.CharField(_("Modality"), max_length=16, blank=True)
    body_part = models.CharField(_("Body part"), max_length=16, blank=True)
    language = models.CharField(_("Language"), max_length=8, default="en")
    findings = models.TextField(_("Findings"), blank=True)
    impression = models.TextField(_("Impression"), blank=True)
    active = models.BooleanField(_("Active"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("report template")
        verbose_name_plural = _("report templates")
        ordering = ["modality", "name"]

    def __str__(self) -> str:
        return self.name


class ReportSnippet(models.Model):
    """Short insertable phrases (normal findings, standard recommendations)."""

    class Section(models.TextChoices):
        FINDINGS = "findings", _("Findings")
        IMPRESSION = "impression", _("Impression")

    label = models.CharField(_("Label"), max_length=64)
    text = models.TextField(_("Text"))
    section = models.CharField(max_length=16, choices=Section.choices, default=Section.FINDINGS)
    modality = models.CharField(_("Modality"), max_length=16, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("report snippet")
        verbose_name_plural = _("report snippets")
        ordering = ["section", "label"]

    def __str__(self) -> str:
        return self.label


class Report(models.Model):
    requested_procedure = models.OneToOneField(
        "scheduling.RequestedProcedure", on_delete=models.PROTECT, related_name="report"
    )
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT, db_index=True
    )
    # Working text of a draft/preliminary. Frozen once final (the signed text lives in the
    # final ReportVersion; corrections are Addenda).
    findings = models.TextField(_("Findings"), blank=True)
    impression = models.TextField(_("Impression"), blank=True)
    template = models.ForeignKey(ReportTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    author = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    signed_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # RADPEER: when the sampler looked at this signed report (selected or not). Each signed
    # report is considered exactly once, so the sampled share equals RIS_PEER_REVIEW_SHARE.
    peer_review_considered_at = models.DateTimeField(null=True, blank=True, editable=False)
    amended_at = models.DateTimeField(null=True, blank=True)
    # Claim (lock) so two radiologists do not write the same report.
    locked_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    locked_until = models.DateTimeField(null=True, blank=True)
    # Return to author (preliminary -> draft).
    returned_at = models.DateTimeField(null=True, blank=True)
    returned_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    return_comment = models.TextField(blank=True)
    # Bumped by every write: optimistic concurrency for the editor's autosave.
    revision = models.PositiveIntegerField(default=0)
    # Printed on the PDF; the public verification page looks it up.
    verification_code = models.CharField(max_length=16, blank=True, db_index=True)
    # Final text + addenda, lower-cased, for search (filled at signing only: drafts are never found).
    search_text = models.TextField(blank=True, editable=False)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "signed_at"], name="report_status_signed")]
        constraints = [
            models.UniqueConstraint(
                fields=["verification_code"],
                condition=~models.Q(verification_code=""),
                name="uniq_report_verification_code",
            )
        ]

    def __str__(self) -> str:
        return f"Report {self.pk} ({self.status})"

    @property
    def is_signed(self) -> bool:
        return self.status in SIGNED_STATUSES


class VersionKind(models.TextChoices):
    DRAFT = "draft", _("Draft (autosave)")
    PRELIMINARY = "preliminary", _("Submitted (preliminary)")
    REVIEWED = "reviewed", _("Edited by reviewer")
    FINAL = "final", _("Final (signed)")


class ReportVersion(InsertOnlyModel):
    """An immutable snapshot of the report text."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=VersionKind.choices)
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    author = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("report version")
        verbose_name_plural = _("report versions")
        ordering = ["report", "number"]
        constraints = [models.UniqueConstraint(fields=["report", "number"], name="uniq_report_version")]
        indexes = [models.Index(fields=["report", "kind"], name="reportversion_kind")]

    def __str__(self) -> str:
        return f"Report {self.report_id} v{self.number} {self.kind}"


class Addendum(InsertOnlyModel):
    """A signed correction or supplement to a final report; never an edit of the final text."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="addenda")
    number = models.PositiveIntegerField()
    text = models.TextField()
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("addendum")
        verbose_name_plural = _("addenda")
        ordering = ["report", "number"]
        constraints = [models.UniqueConstraint(fields=["report", "number"], name="uniq_report_addendum")]

    def __str__(self) -> str:
        return f"Report {self.report_id} addendum {self.number}"


class SignatureMeaning(models.TextChoices):
    AUTHORED = "authored", _("Authored")
    REVIEWED = "reviewed", _("Reviewed")
    APPROVED = "approved", _("Approved")


class Signature(InsertOnlyModel):
    """21 CFR 11.50: printed name, time and meaning, bound to the content by its sha256."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="signatures")
    version = models.ForeignKey(
        ReportVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="signatures"
    )
    addendum = models.ForeignKey(
        Addendum, null=True, blank=True, on_delete=models.PROTECT, related_name="signatures"
    )
    signer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    printed_name = models.CharField(max_length=128)
    meaning = models.CharField(max_length=16, choices=SignatureMeaning.choices)
    signed_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")
        ordering = ["signed_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(version__isnull=False, addendum__isnull=True)
                | models.Q(version__isnull=True, addendum__isnull=False),
                name="signature_signs_one_thing",
            )
        ]

    def __str__(self) -> str:
        return f"{self.printed_name} {self.meaning} {self.signed_at:%Y-%m-%d %H:%M}"


class ReportEvent(AppendOnlyModel):
    """The report's event log (TAT preliminary/final come from here). Append-only."""

    class Action(models.TextChoices):
        CREATED = "created", _("Created")
        SAVED = "saved", _("Saved")
        SUBMITTED = "submitted", _("Submitted")
        RETURNED = "returned", _("Returned")
        REVIEW_EDITED = "review_edited", _("Edited in review")
        SIGNED = "signed", _("Signed")
        ADDENDUM = "addendum", _("Addendum")
        RELEASED = "released", _("Released")
        CLAIMED = "claimed", _("Claimed")
        UNCLAIMED = "unclaimed", _("Unclaimed")
        CRITICAL = "critical", _("Critical result")

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=16, choices=Action.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("report event")
        verbose_name_plural = _("report events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["action", "at"], name="reportevent_action_at")]

    def __str__(self) -> str:
        return f"{self.report_id} {self.action}"


class CriticalCategory(models.TextChoices):
    # ACR Practice Parameter for Communication of Diagnostic Imaging Findings.
    CAT1 = "1", _("Category 1: immediate (minutes)")
    CAT2 = "2", _("Category 2: urgent (hours)")
    CAT3 = "3", _("Category 3: significant, not urgent (days)")


class NotificationMethod(models.TextChoices):
    PHONE = "phone", _("Telephone")
    IN_PERSON = "in_person", _("In person")
    SECURE_MESSAGE = "secure_message", _("Secure message")
    EMR = "emr", _("EMR alert")


class CriticalResult(models.Model):
    """危急值: a finding that must reach a responsible clinician within a time target."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="critical_results")
    category = models.CharField(max_length=1, choices=CriticalCategory.choices)
    finding = models.CharField(_("Finding"), max_length=255)
    created_at = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(USER, null=True, on_delete=models.SET_NULL, related_name="+")
    due_at = models.DateTimeField(db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notified_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    recipient = models.CharField(_("Notified person"), max_length=128, blank=True)
    method = models.CharField(max_length=16, choices=NotificationMethod.choices, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(_("Acknowledged by"), max_length=128, blank=True)
    read_back = models.BooleanField(_("Read-back confirmed"), default=False)
    note = models.TextField(blank=True)

    class Meta:
        verbose_name = _("critical result")
        verbose_name_plural = _("critical results")
        ordering = ["due_at"]

    def __str__(self) -> str:
        return f"Critical {self.category} on report {self.report_id}"


class PeerReviewScore(models.TextChoices):
    # RADPEER (ACR): 1 concur; 2 discrepancy in interpretation, not ordinarily expected to be
    # made (understandable miss); 3 discrepancy that should be made most of the time;
    # a = unlikely to be clinically significant, b = likely to be clinically significant.
    S1 = "1", _("1 – Concur with interpretation")
    S2A = "2a", _("2a – Understandable miss, unlikely significant")
    S2B = "2b", _("2b – Understandable miss, likely significant")
    S3A = "3a", _("3a – Should be made most of the time, unlikely significant")
    S3B = "3b", _("3b – Should be made most of the time, likely significant")


class PeerReview(models.Model):
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="peer_reviews")
    reviewer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    # Whose interpretation is scored (the signer of the final report); hidden from the reviewer.
    radiologist = models.ForeignKey(USER, null=True, on_delete=models.PROTECT, related_name="+")
    score = models.CharField(max_length=2, choices=PeerReviewScore.choices, blank=True)
    comment = models.TextField(blank=True)
    assigned_at = models.DateTimeField(db_index=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("peer review")
        verbose_name_plural = _("peer reviews")
        ordering = ["-assigned_at"]
        constraints = [models.UniqueConstraint(fields=["report", "reviewer"], name="uniq_peer_review")]

    def __str__(self) -> str:
        return f"Peer review of report {self.report_id}"


class ReleaseKind(models.TextChoices):
    DOWNLOAD = "download", _("Downloaded")
    PRINT = "print", _("Printed")
    RELEASE = "release", _("Released")
    FILM = "film", _("Film printed")


class ReportRelease(InsertOnlyModel):
    """发片: who released or printed which signed report, when, to whom."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="releases")
    kind = models.CharField(max_length=16, choices=ReleaseKind.choices)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(USER, null=True, on_delete=models.PROTECT, related_name="+")
    recipient = models.CharField(_("Released to"), max_length=128, blank=True)
    copies = models.PositiveSmallIntegerField(default=1)
    addenda_count = models.PositiveSmallIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("report release")
        verbose_name_plural = _("report releases")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.kind} report {self.report_id}"
