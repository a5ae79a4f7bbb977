"""Admin: read-mostly views of the ingest outbox and index (changes go through services)."""

from django.contrib import admin

from ris.admin import ReadOnlyAdmin

from .models import DuplicateConflict, ReceivedObject, ReconciliationItem, Series, Study, StudyLink


@admin.register(ReceivedObject)
class ReceivedObjectAdmin(ReadOnlyAdmin):
    list_display = ["id", "sop_instance_uid", "state", "attempts", "calling_ae", "source", "received_at"]
    list_filter = ["state", "source"]
    search_fields = ["sop_instance_uid", "study_instance_uid"]


@admin.register(DuplicateConflict)
class DuplicateConflictAdmin(ReadOnlyAdmin):
    list_display = ["id", "original", "calling_ae", "received_at", "resolved_at"]


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "accession_number",
        "modalities",
        "study_date",
        "requested_procedure",
        "num_instances",
    ]
    search_fields = ["study_instance_uid", "accession_number", "dicom_patient_id"]


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["id", "series_instance_uid", "modality", "num_instances", "qc_flagged"]


@admin.register(StudyLink)
class StudyLinkAdmin(ReadOnlyAdmin):
    list_display = ["id", "study", "requested_procedure", "method", "linked_by", "linked_at", "unlinked_at"]


@admin.register(ReconciliationItem)
class ReconciliationItemAdmin(ReadOnlyAdmin):
    list_display = ["id", "study", "reason", "created_at", "resolved_at", "resolved_by"]
    list_filter = ["reason"]
