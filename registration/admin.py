"""Admin for patients: read-mostly. Registration and edits go through the front-desk pages
(services, validation, audit); the admin only looks, and every look is audited."""

from django.contrib import admin

from audit.services import audit_record
from ris.admin import RoleAdminMixin

from .models import Patient


@admin.register(Patient)
class PatientAdmin(RoleAdminMixin, admin.ModelAdmin):
    list_display = (
        "patient_id",
        "issuer",
        "pn_ideographic",
        "pn_alphabetic",
        "birth_date",
        "sex",
        "is_temporary",
    )
    list_filter = ("sex", "is_temporary", "issuer")
    search_fields = ("patient_id", "pn_alphabetic", "pn_ideographic", "search_compact")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = [f.name for f in Patient._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if getattr(response, "status_code", 200) == 200:
            audit_record(
                action="patient.search",
                request=request,
                object_type="patient",
                detail={"admin": True, "query": request.GET.get("q", "")},
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if getattr(response, "status_code", 200) == 200 and str(object_id).isdigit():
            audit_record(
                action="patient.view",
                request=request,
                object_type="patient",
                object_id=object_id,
                patient_id=int(object_id),
                detail={"admin": True},
            )
        return response
