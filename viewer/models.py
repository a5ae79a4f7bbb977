"""What the viewer remembers per user: layout, W/L presets per modality, the last tool."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ViewerPreference(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # {"layout": "1x1"|"1x2"|"mpr", "presets": {"CT": "lung"}, "tool": "wl"} (viewer.services)
    data = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"viewer preferences of {self.user_id}"
