from django.contrib import admin

from ris.admin import ReadOnlyAdmin

from .models import (
    CriticalResult,
    PeerReview,
    Report,
    ReportEvent,
    ReportSnippet,
    ReportTemplate,
)


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "procedure_type", "modality", "body_part", "language", "active", "updated_at"]
    list_filter = ["modality", "language", "active"]
    search_fields = ["name", "findings", "impression"]
    autocomplete_fields = []


@admin.register(ReportSnippet)
class ReportSnippetAdmin(admin.ModelAdmin):
    list_display = ["label", "section", "modality", "active"]
    list_filter = ["section", "modality", "active"]
    search_fields = ["label", "text"]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "requested_procedure", "status", "author", "signed_by", "created_at", "signed_at"]
    list_filter = ["status"]
    exclude = ["search_text"]


@admin.register(ReportEvent)
class ReportEventAdmin(ReadOnlyAdmin):
    list_display = ["report", "action", "from_status", "to_status", "at", "actor"]
    list_filter = ["action"]


@admin.register(CriticalResult)
class CriticalResultAdmin(ReadOnlyAdmin):
    list_display = ["report", "category", "created_at", "due_at", "notified_at", "acknowledged_at"]
    list_filter = ["category"]


@admin.register(PeerReview)
class PeerReviewAdmin(ReadOnlyAdmin):
    list_display = ["report", "reviewer", "radiologist", "score", "assigned_at", "scored_at"]
    list_filter = ["score"]
