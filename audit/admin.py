from django.contrib import admin

from ris.admin import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_username", "role", "action", "object_type", "object_id", "outcome")
    list_filter = ("action", "outcome")
    search_fields = ("actor_username", "object_id")
