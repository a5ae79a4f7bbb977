"""One error format for the whole API (RFC 9457 problem details) and zero 500s on bad input."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from reports.models import Report
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _problem(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.content[:300])
    assert resp["Content-Type"] == PROBLEM, resp["Content-Type"]
    body = resp.json()
    for key in ("type", "title", "status", "detail", "instance", "code"):
        assert key in body, (key, body)
    assert body["status"] == status
    return body


def test_validation_error_is_a_problem_with_field_errors(api_for):
    resp = api_for("front_desk").post("/api/v1/orders/", {}, format="json")
    body = _problem(resp, 400)
    assert body["code"] == "invalid"
    assert "patient" in body["errors"]
    assert body["instance"] == "/api/v1/orders/"


def test_not_found_forbidden_unauthenticated_are_problems(api_for):
    _problem(api_for("front_desk").get("/api/v1/patients/999999/"), 404)
    _problem(api_for("front_desk").get("/api/v1/audit/events/"), 403)
    anon = APIClient().get("/api/v1/patients/")
    body = _problem(anon, 401)
    assert anon["WWW-Authenticate"].startswith("Token")
    assert body["code"] == "not_authenticated"


def test_problem_is_json_even_when_the_client_asks_for_html(api_for):
    resp = api_for("front_desk").get("/api/v1/patients/999999/", HTTP_ACCEPT="text/html")
    _problem(resp, 404)


@pytest.mark.parametrize("url", ["/api/v1/reports/search.json", "/api/v1/reports/1/pdf.json"])
def test_format_suffix_urls_are_not_server_errors(api_for, url):
    client = api_for("radiologist")
    client.raise_request_exception = False
    resp = client.get(url)
    assert resp.status_code < 500
    _problem(resp, 404)


@pytest.mark.parametrize(
    "url,param",
    [
        ("/api/v1/patients/?q=wang%00", "q"),
        ("/api/v1/reports/search/?q=%00", "q"),
        ("/api/v1/worklist/?patient_name=a%00b", "patient_name"),
        ("/api/v1/audit/events/?action=%00", "action"),
        ("/api/v1/orders/?accession_number=%00", "accession_number"),
        ("/api/v1/critical-results/?overdue=%00", "overdue"),
    ],
)
def test_nul_byte_in_a_query_parameter_is_a_400_naming_it(users, url, param):
    client = APIClient()
    client.force_authenticate(UserFactory(username="nul_admin", is_superuser=True, is_staff=True))
    client.raise_request_exception = False
    body = _problem(client.get(url), 400)
    assert param in body["errors"], body


def test_nul_byte_on_a_page_is_a_400_not_a_500(client_for):
    c = client_for("front_desk")
    c.raise_request_exception = False
    resp = c.get("/registration/patients/?q=%00")
    assert resp.status_code == 400


def test_nul_byte_in_a_parameter_name_is_refused(api_for):
    client = api_for("front_desk")
    client.raise_request_exception = False
    _problem(client.get("/api/v1/patients/?a%00b=1"), 400)


def test_long_username_on_token_endpoint_is_a_400_naming_the_field(db):
    client = APIClient()
    client.raise_request_exception = False
    resp = client.post("/api/v1/auth/token/", {"username": "u" * 300, "password": "x"}, format="json")
    body = _problem(resp, 400)
    assert "username" in body["errors"]


def test_long_username_on_login_page_is_a_form_error(db):
    c = Client(raise_request_exception=False)
    resp = c.post("/accounts/login/", {"username": "u" * 300, "password": "x"})
    assert resp.status_code == 200
    assert resp.context["form"].errors


@pytest.mark.parametrize(
    "param",
    [
        "created_after=0001-01-01T00:00:00%2B01:00",
        "created_after=9999-12-31T23:59:59-01:00",
        "created_after=2024-01-01T00:00:00%2B05:30:15",
    ],
)
def test_datetime_filter_with_an_unstorable_offset_is_a_400(api_for, param):
    client = api_for("front_desk")
    client.raise_request_exception = False
    body = _problem(client.get(f"/api/v1/orders/?{param}"), 400)
    assert "created_after" in body["errors"]


def test_report_datetime_filter_unstorable_is_a_400(api_for):
    client = api_for("radiologist")
    client.raise_request_exception = False
    body = _problem(client.get("/api/v1/reports/?signed_at__gte=0001-01-01T00:00:00%2B10:00"), 400)
    assert "signed_at__gte" in body["errors"]
    assert Report.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/events/?since=0001-01-01T00:00:00%2B01:00",
        "/api/v1/audit/events/?until=9999-12-31T23:59:59-01:00",
        "/api/v1/audit/events/?since=2024-01-01T00:00:00%2B05:30:15",
        "/api/v1/department/figures/tat_trend/?from=0001-01-01&to=0001-01-02",
        "/api/v1/department/figures/tat_trend/?from=9999-12-30&to=9999-12-31",
        "/api/v1/procedures/?scheduled_after=0001-01-01T00:00:00%2B14:00",
        "/api/v1/procedures/?scheduled_before=9999-12-31T23:59:59-12:00",
        "/api/v1/orders/?created_after=99999-01-01T00:00:00",
    ],
)
def test_extreme_dates_are_never_server_errors(db, url):
    client = APIClient()
    client.force_authenticate(UserFactory(username="dt_admin", is_superuser=True, is_staff=True))
    client.raise_request_exception = False
    resp = client.get(url)
    assert resp.status_code in (200, 400), (resp.status_code, resp.content[:300])
    if resp.status_code == 400:
        _problem(resp, 400)


def test_long_username_on_admin_login_is_not_a_server_error(db):
    """The admin's own login form has no length check: axes's username callable cuts it."""
    c = Client(raise_request_exception=False)
    resp = c.post("/admin/login/", {"username": "u" * 300, "password": "x"})
    assert resp.status_code == 200
