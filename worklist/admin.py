"""Read-only admin views of what modalities reported (MPPS) and what technologists noted.

MPPS rows change only through ``worklist.services`` (the DICOM SCP or the console); the admin
shows them for support and dispute resolution. Worklist files are imported at
``/worklist/import/`` (administrators) or with ``manage.py import_worklists``.
"""

from django.contrib import admin

from ris.admin import ReadOnlyAdmin

from .models import ExamNote, MPPSEvent, MPPSException, PerformedProcedureStep, ScheduledStationAlternate


class MPPSEventInline(admin.TabularInline):
    model = MPPSEvent
    extra = 0
    can_delete = False
    readonly_fields = ("action", "status", "source_ae", "at", "detail")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PerformedProcedureStep)
class PerformedProcedureStepAdmin(ReadOnlyAdmin):
    list_display = (
        "sop_instance_uid",
        "status",
        "performed_station_ae",
        "modality",
        "started_at",
        "ended_at",
        "unscheduled",
    )
    list_filter = ("status", "unscheduled", "modality")
    search_fields = ("sop_instance_uid", "accession_number", "study_instance_uid", "performed_station_ae")
    date_hierarchy = "created_at"
    inlines = [MPPSEventInline]


@admin.register(MPPSException)
class MPPSExceptionAdmin(ReadOnlyAdmin):
    list_display = ("mpps", "reason", "source_ae", "created_at", "resolved_at")
    list_filter = ("reason",)


@admin.register(ExamNote)
class ExamNoteAdmin(ReadOnlyAdmin):
    list_display = (
        "procedure",
        "contrast_agent",
        "contrast_dose_ml",
        "films_printed",
        "author",
        "created_at",
    )


@admin.register(ScheduledStationAlternate)
class ScheduledStationAlternateAdmin(ReadOnlyAdmin):
    list_display = ("step", "ae_title", "position")
    search_fields = ("ae_title",)
