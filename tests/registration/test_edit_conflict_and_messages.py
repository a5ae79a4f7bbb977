"""Patient edit: a stale form shows what the other person changed; messages in plain words."""

from __future__ import annotations

import pytest
from django.conf import settings as dj
from django.urls import reverse

from registration.forms import PatientForm
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _form_data(response) -> dict:
    form = response.context["form"]
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = value.isoformat() if hasattr(value, "isoformat") else value
    data["version"] = response.context["version"]
    data["seen"] = response.context["seen"]
    return data


def test_stale_form_shows_the_other_users_changes(client_for, users):
    patient = PatientFactory(phone="13800000000", allergies="")
    url = reverse("registration:patient_edit", args=[patient.pk])
    first, second = client_for("front_desk"), client_for("admin")
    mine = _form_data(first.get(url))
    theirs = _form_data(second.get(url))
    theirs["allergies"] = "Penicillin"
    assert second.post(url, theirs).status_code == 302
    mine["phone"] = "13911112222"
    resp = first.post(url, mine)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="conflict-changes"' in html
    rows = resp.context["changes"]
    assert [(label, before, now) for label, before, now, _yours in rows] == [("Allergies", "", "Penicillin")]
    assert users["admin"].username in html  # who changed it
    patient.refresh_from_db()
    assert patient.phone == "13800000000" and patient.allergies == "Penicillin"  # nothing overwritten


def test_name_errors_are_in_plain_words_both_languages(client):
    form = PatientForm({"family_name": "Wang^", "given_name": "Lei", "sex": "M"})
    assert not form.is_valid()
    text = " ".join(form.errors["family_name"])
    assert "'^' or '='" not in text and "remove" in text
    from django.utils import translation

    with translation.override("zh-hans"):
        form = PatientForm({"family_name": "Wang^", "given_name": "Lei", "sex": "M"})
        form.is_valid()
        zh = " ".join(form.errors["family_name"])
    assert "^" in zh and any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    assert dj.LANGUAGE_COOKIE_NAME
