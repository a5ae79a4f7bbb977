"""A period near year 1 or 9999 is a field error on every path, never a 500 (issue 9 item 7)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

EXTREMES = [
    {"from": "0001-01-01"},
    {"to": "0001-01-05"},
    {"from": "9999-12-01", "to": "9999-12-31"},
]


@pytest.mark.parametrize("params", EXTREMES)
def test_pages_answer_with_the_field_named(client_for, params):
    client = client_for("dept_head")
    page = client.get("/department/turnaround/", params)
    assert page.status_code == 200  # the page shows the form error and the default period
    assert "1900" in page.content.decode()
    for fmt in ("json", "csv"):
        r = client.get(f"/department/figures/tat_steps.{fmt}", params)
        assert r.status_code == 400, (fmt, r.status_code)


@pytest.mark.parametrize("params", EXTREMES)
def test_the_api_answers_400_naming_the_field(api_for, params):
    r = api_for("dept_head").get("/api/v1/department/figures/tat_steps/", params)
    assert r.status_code == 400
    assert set(r.json()["errors"]) & set(params)
