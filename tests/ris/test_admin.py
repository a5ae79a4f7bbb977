"""Every admin page the administrator may open renders, and clinical records stay read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_every_changelist_renders_for_the_ris_admin(client_for):
    client = client_for("admin")
    assert client.get(reverse("admin:index")).status_code == 200
    from ris.admin import RoleAdminMixin

    ours = [m for m, a in admin.site._registry.items() if isinstance(a, RoleAdminMixin)]
    assert len(ours) >= 15
    for model in ours:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)


def test_clinical_records_cannot_be_added_in_the_admin(client_for, users):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = users["admin"]
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "audit" or model.__name__ in {
            "Report",
            "ReportEvent",
            "ReceivedObject",
            "Study",
            "PerformedProcedureStep",
        }:
            assert not model_admin.has_add_permission(request), model
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
            checked += 1
    assert checked >= 5


def test_non_staff_roles_cannot_open_the_admin(client_for):
    resp = client_for("front_desk").get(reverse("admin:index"))
    assert resp.status_code == 302 and "login" in resp["Location"]
