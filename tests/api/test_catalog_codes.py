"""Procedure catalog codes obey their VRs at every entry (API, model, admin) and a data
check lists rows that do not."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from scheduling.models import ProcedureType
from tests.factories import ProcedureTypeFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD = {"code_value": "CTHEAD", "coding_scheme": "99RIS", "code_meaning": "头颅CT平扫", "modality": "CT"}


@pytest.mark.parametrize(
    "field,value",
    [
        ("code_value", "CT\ue000"),  # private use
        ("code_value", "头颅"),  # identifiers are ASCII
        ("coding_scheme", "99\u200bRIS"),  # zero-width space (format character)
        ("code_meaning", "Head\ue000CT"),
        ("code_meaning", "Head\U000f0001"),  # supplementary private use
        ("code_meaning", "   "),
    ],
)
def test_api_refuses_a_code_that_breaks_its_vr(api_for, field, value):
    resp = api_for("admin").post("/api/v1/procedure-types/", {**GOOD, field: value}, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["errors"]
    assert not ProcedureType.objects.exists()


def test_api_accepts_chinese_meaning_and_refuses_a_bad_update(api_for):
    api = api_for("admin")
    created = api.post("/api/v1/procedure-types/", GOOD, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    bad = api.patch(f"/api/v1/procedure-types/{pk}/", {"code_meaning": "x\ue000"}, format="json")
    assert bad.status_code == 400 and "code_meaning" in bad.json()["errors"]
    assert ProcedureType.objects.get(pk=pk).code_meaning == GOOD["code_meaning"]


def test_model_clean_refuses_private_use():
    ptype = ProcedureType(code_value="CT\ue000", coding_scheme="99RIS", code_meaning="Head", modality="CT")
    with pytest.raises(ValidationError) as exc:
        ptype.full_clean()
    assert "code_value" in exc.value.message_dict


def test_admin_form_refuses_private_use(client):
    admin = UserFactory(username="catalog_admin", is_superuser=True, is_staff=True)
    client.force_login(admin)
    resp = client.post(
        "/admin/scheduling/proceduretype/add/",
        {**GOOD, "code_meaning": "Head\ue000", "duration_minutes": 15, "body_part": "", "preparation": ""},
    )
    assert resp.status_code == 200
    assert "code_meaning" in resp.context["adminform"].form.errors
    assert not ProcedureType.objects.exists()


def test_catalog_check_lists_existing_bad_rows(capsys):
    ProcedureTypeFactory(code_value="GOOD1")
    ProcedureType.objects.create(
        code_value="BAD\ue000", coding_scheme="99RIS", code_meaning="x", modality="CT"
    )
    bad = ProcedureType.objects.get(code_value="BAD\ue000")
    with pytest.raises(CommandError, match="1 procedure catalog entry"):
        call_command("catalog_check")
    out = capsys.readouterr().out
    assert f"procedure type {bad.pk}" in out and "\\ue000" in out
    assert "GOOD1" not in out


def test_catalog_check_passes_a_clean_catalog(capsys):
    ProcedureTypeFactory(code_value="GOOD1")
    call_command("catalog_check")
    assert "every code obeys its VR" in capsys.readouterr().out
