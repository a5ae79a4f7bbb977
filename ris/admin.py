"""Admin building blocks shared by the apps.

Clinical records change only through services, so most admin pages are read-only; the RIS
``admin`` role may open them without per-model Django permissions.
"""

from django.contrib import admin

from .models import StaffProfile
from .roles import Role, user_roles


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


class ReadOnlyAdmin(RoleAdminMixin, admin.ModelAdmin):
    """Look, never touch: records that only services may write."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StaffProfile)
class StaffProfileAdmin(RoleAdminMixin, admin.ModelAdmin):
    list_display = ("user", "printed_name", "title", "modalities")
    search_fields = ("user__username", "printed_name")
