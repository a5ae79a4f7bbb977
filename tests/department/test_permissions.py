"""Only the department head and the administrator see the dashboards (pages, CSV, API)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from department import registry
from ris.roles import Role

ALLOWED = {Role.DEPT_HEAD, Role.ADMIN}
PAGES = ["dashboard", "turnaround", "workload", "quality", "equipment", "materials"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.ALL)
def test_pages_and_exports(client_for, role):
    c = client_for(role)
    expected = 200 if role in ALLOWED else 403
    for page in PAGES:
        assert c.get(reverse(f"department:{page}")).status_code == expected, page
    for name in ["tat_steps", "materials"]:
        assert c.get(reverse("department:figure_json", args=[name])).status_code == expected
        assert c.get(reverse("department:figure_csv", args=[name])).status_code == expected


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.ALL)
def test_api(api_for, role):
    api = api_for(role)
    expected = 200 if role in ALLOWED else 403
    assert api.get("/api/v1/department/figures/").status_code == expected
    assert api.get("/api/v1/department/figures/backlog/").status_code == expected
    assert api.get("/api/v1/department/figures/backlog/csv/").status_code == expected
    assert api.get("/api/v1/department/materials/").status_code == expected


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client):
    r = client.get(reverse("department:dashboard"))
    assert r.status_code == 302 and "login" in r["Location"]
    assert client.get("/api/v1/department/figures/tat_steps/").status_code in (401, 403)


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.ALL)
def test_downtime_and_stock_in_need_the_right_role(client_for, role):
    from tests.factories import StationFactory

    st = StationFactory()
    c = client_for(role)
    r = c.post(
        reverse("department:equipment"),
        {"station": st.pk, "start": "2030-01-01T10:00", "end": "2030-01-01T12:00", "reason": "service"},
    )
    assert r.status_code == (302 if role in ALLOWED else 403)


@pytest.mark.django_db
def test_every_figure_is_reachable_for_the_dept_head(client_for):
    c = client_for(Role.DEPT_HEAD)
    for name in registry.FIGURES:
        r = c.get(reverse("department:figure_json", args=[name]))
        assert r.status_code == 200, name
        assert r.json()["name"] == name


@pytest.mark.django_db
def test_pages_are_translated(client_for, settings):
    import shutil

    if not shutil.which("msgfmt"):
        pytest.skip("gettext not installed: no compiled translations")
    c = client_for(Role.DEPT_HEAD)
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "差错统计" in c.get(reverse("department:quality")).content.decode()
    assert "审计日志" in c.get(reverse("audit:event_list")).content.decode()
    fig = c.get(reverse("department:figure_json", args=["tat_steps"])).json()
    assert (fig["columns"][0], fig["columns"][2]) == ("环节", "中位数（分钟）")
