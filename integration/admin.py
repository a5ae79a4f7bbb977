from django.contrib import admin

from .models import Destination, InterfaceMessage, OutboxEvent, OutboxMessage, Sender


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["application", "facility", "host", "default_charset", "active"]
    list_filter = ["active", "default_charset"]


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "port", "message_types", "charset", "include_pdf", "enabled"]
    list_filter = ["enabled", "charset"]


class OutboxEventInline(admin.TabularInline):
    model = OutboxEvent
    extra = 0
    can_delete = False
    readonly_fields = ["action", "from_state", "to_state", "at", "actor", "detail"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "destination",
        "message_type",
        "event",
        "state",
        "attempts",
        "created_at",
        "sent_at",
    ]
    list_filter = ["state", "message_type", "destination"]
    search_fields = ["control_id"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    inlines = [OutboxEventInline]

    def has_add_permission(self, request):
        return False


@admin.register(InterfaceMessage)
class InterfaceMessageAdmin(admin.ModelAdmin):
    """Raw text is visible here: the Django admin is for administrators only."""

    list_display = [
        "received_at",
        "direction",
        "sender",
        "destination",
        "message_type",
        "control_id",
        "status",
    ]
    list_filter = ["direction", "status", "message_type"]
    search_fields = ["control_id"]
    readonly_fields = [f.name for f in InterfaceMessage._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
