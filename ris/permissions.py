"""Enforcing the permission matrix in the API and in page views."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from .roles import has_permission


def audit_denied(request, action: str) -> None:
    """A refused attempt is evidence too (ATNA): one ``access.denied`` event, no patient data."""
    from audit.services import audit_record

    audit_record(
        action="access.denied",
        request=request,
        outcome="denied",
        detail={"needed": action, "method": request.method, "path": request.path[:200]},
    )


class RolePermission(BasePermission):
    """Views declare ``required_actions = {"list": "patient.view", ...}`` per DRF action.

    An action missing from the mapping is refused (deny by default); ``"*"`` is the
    fallback key. Unauthenticated requests get 401/403 from DRF as usual.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        mapping = getattr(view, "required_actions", None)
        if mapping is None:
            return False
        action = getattr(view, "action", None) or request.method.lower()
        needed = mapping.get(action, mapping.get("*"))
        if needed is None:
            return False
        if needed == "authenticated":
            return True
        if has_permission(user, needed):
            return True
        audit_denied(request, needed)
        return False


def role_required(action: str):
    """Page-view decorator: login required, then the matrix; 403 otherwise."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not has_permission(request.user, action):
                audit_denied(request, action)
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class RoleRequiredMixin:
    """Class-based page views: ``required_action = "board.view"``."""

    required_action: str = ""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            from django.contrib.auth.views import redirect_to_login

            return redirect_to_login(request.get_full_path())
        if not has_permission(request.user, self.required_action):
            audit_denied(request, self.required_action)
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)
