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
