"""Roles (Django groups) and the permission matrix: which role may perform which action.

The matrix is the single source for pages, the API and the README's table. Superusers and
the ``admin`` role may do everything. Object scope (which rows a role sees) lives in the
selectors/``get_queryset`` of each app.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _


class Role:
    FRONT_DESK = "front_desk"
    TECHNOLOGIST = "technologist"
    RADIOLOGIST = "radiologist"
    REVIEWER = "reviewer"
    DEPT_HEAD = "dept_head"
    ADMIN = "admin"

    ALL = (FRONT_DESK, TECHNOLOGIST, RADIOLOGIST, REVIEWER, DEPT_HEAD, ADMIN)
    LABELS = {
        FRONT_DESK: _("Front desk"),
        TECHNOLOGIST: _("Technologist"),
        RADIOLOGIST: _("Radiologist"),
        REVIEWER: _("Reviewing radiologist"),
        DEPT_HEAD: _("Department head"),
        ADMIN: _("Administrator"),
    }


R = Role
CLINICAL = {R.FRONT_DESK, R.TECHNOLOGIST, R.RADIOLOGIST, R.REVIEWER, R.DEPT_HEAD}

# action -> roles allowed (ADMIN is implied everywhere).
PERMISSIONS: dict[str, set[str]] = {
    "patient.view": set(CLINICAL),
    "patient.create": {R.FRONT_DESK},
    "patient.update": {R.FRONT_DESK},
    "patient.merge": {R.FRONT_DESK},
    "catalog.view": set(CLINICAL),
    "catalog.manage": set(),
    "station.view": set(CLINICAL),
    "station.manage": {R.DEPT_HEAD},
    "order.view": set(CLINICAL),
    "order.create": {R.FRONT_DESK},
    "procedure.view": set(CLINICAL),
    "procedure.arrive": {R.FRONT_DESK, R.TECHNOLOGIST},
    "procedure.cancel": {R.FRONT_DESK},
    "procedure.reschedule": {R.FRONT_DESK},
    # Book an order that arrived without a slot (HL7 ORM, FHIR ServiceRequest).
    "procedure.book": {R.FRONT_DESK},
    "procedure.start": {R.TECHNOLOGIST},
    "procedure.complete": {R.TECHNOLOGIST},
    "procedure.discontinue": {R.TECHNOLOGIST},
    "board.view": set(CLINICAL),
    "worklist.view": {R.TECHNOLOGIST, R.DEPT_HEAD},
    "console.use": {R.TECHNOLOGIST},
    "worklist.import": set(),  # file-worklist migration: administrators only
    "imaging.view": {R.TECHNOLOGIST, R.RADIOLOGIST, R.REVIEWER, R.DEPT_HEAD},
    "imaging.reconcile": {R.TECHNOLOGIST, R.DEPT_HEAD},
    # Merge a temporary/trauma registration from the reconciliation workbench (IHE PIR).
    "imaging.merge": {R.DEPT_HEAD},
    # Send objects over STOW-RS (modalities and gateways use DIMSE; this is for importers).
    "imaging.store": {R.TECHNOLOGIST},
    "report.view": {R.RADIOLOGIST, R.REVIEWER, R.DEPT_HEAD, R.FRONT_DESK},
    "report.write": {R.RADIOLOGIST, R.REVIEWER},
    "report.sign": {R.REVIEWER},
    "report.release": {R.FRONT_DESK, R.REVIEWER},
    "report.override_lock": {R.DEPT_HEAD},
    "peer_review.score": {R.RADIOLOGIST, R.REVIEWER},
    "peer_review.results": {R.DEPT_HEAD},
    "critical.view": {R.RADIOLOGIST, R.REVIEWER, R.DEPT_HEAD},
    "dashboard.view": {R.DEPT_HEAD},
    "audit.view": {R.DEPT_HEAD},
    # HL7 interfaces: the monitor (per sender/destination, message log without raw text);
    # raw message text, senders/destinations and retries are for administrators.
    "interface.view": {R.DEPT_HEAD},
    "interface.raw": set(),
    "interface.manage": set(),
}


def user_roles(user) -> set[str]:
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_ris_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) & set(Role.ALL)
        if user.is_superuser:
            cached.add(Role.ADMIN)
        user._ris_roles = cached
    return cached


def has_permission(user, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")
    roles = user_roles(user)
    if Role.ADMIN in roles:
        return True
    return bool(roles & PERMISSIONS[action])


def ensure_groups() -> None:
    for name in Role.ALL:
        Group.objects.get_or_create(name=name)
