from django.db import models
from django.utils.translation import gettext_lazy as _


class IdentifierCounter(models.Model):
    """Counter for generated identifiers on databases without sequences (SQLite).

    On PostgreSQL the counters are real sequences (``ris_<name>_seq``), which never hand out
    the same value twice under concurrency and never block.
    """

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("identifier counter")
        verbose_name_plural = _("identifier counters")

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class StaffProfile(models.Model):
    """What the RIS knows about a user beyond auth: printed name, title, modality scope."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="ris_profile")
    printed_name = models.CharField(max_length=128, blank=True)
    title = models.CharField(max_length=64, blank=True)
    # Comma-separated modalities a technologist works on; empty = all.
    modalities = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return self.printed_name or self.user.get_username()

    @property
    def modality_list(self) -> list[str]:
        return [m.strip().upper() for m in self.modalities.split(",") if m.strip()]


class IdempotencyKey(models.Model):
    """A creating API request made with an ``Idempotency-Key`` header, and its answer.

    The same user sending the same key again gets the stored answer instead of a second
    object (a client that lost the response retries safely). The unique constraint on
    (user, key) is what makes two concurrent retries safe: the second insert waits for the
    first transaction and then finds its row. Rows expire after ``RIS_IDEMPOTENCY_KEY_HOURS``.
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of method, path and the canonical request body: a different request → 422.
    fingerprint = models.CharField(max_length=64)
    claim = models.UUIDField()
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="uniq_idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
