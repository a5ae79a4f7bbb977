"""The append-only audit trail (IHE ATNA in spirit, 举证).

Rows are written by ``audit.services.audit_record`` and never changed: the model refuses
updates and deletes in Python, and on PostgreSQL a trigger refuses them in the database.
Actor and patient are plain references (no foreign keys) so that deleting a user or merging
a patient can never cascade into the evidence.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")
    DENIED = "denied", _("Denied")


class AuditEvent(models.Model):
    at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    source_ae = models.CharField(max_length=16, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True)
    patient_ref = models.BigIntegerField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["patient_ref", "at"]), models.Index(fields=["action", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")
