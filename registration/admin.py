"""Admin for patients: read-mostly. Registration and edits go through the front-desk pages
(services, validation, audit); the admin only looks, and every look is audited."""

from django.contrib import admin

from audit.services import audit_record
from ris.roles import Role, user_roles

from .models import Patient


class RoleAdminMixin:
    """The RIS ``admin`` role may use these admin pages without per-model Django permissions;
    anybody else needs the usual Django permissions (the admin site also requires is_staff)."""

    def _ris_admin(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and Role.ADMIN in user_roles(request.user)

    def has_module_permission(self, request):
        return self._ris_admin(request) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._ris_admin(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return self._ris_admin(request) or super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return self._ris_admin(request) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._ris_admin(request) or super().has_delete_permission(request, obj)


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
