"""GET /api/v1/worklist/ — the MWL selector over REST."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent

from .conftest import at_today

pytestmark = [pytest.mark.postgres]
URL = "/api/v1/worklist/"


def test_requires_worklist_view(api_for, mwl_data):
    assert api_for("front_desk").get(URL).status_code == 403
    assert api_for("technologist").get(URL).status_code == 200


def test_filters_and_payload(api_for, mwl_data):
    api = api_for("technologist")
    today = at_today(0).date().isoformat()
    response = api.get(URL, {"patient_name": "王*", "date_from": today, "date_to": today})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1 and body["truncated"] is False
    item = body["results"][0]
    step = mwl_data["steps"]["wang_ct"]
    assert item["sps_id"] == step.sps_id
    assert item["station_ae_titles"] == ["CT_UTF8"]
    assert item["location"] == "CT-1"
    assert item["protocol_code"] == {"value": "CTCHEST", "scheme": "99RIS", "meaning": "CT chest"}
    assert item["patient"]["name"] == "Wang^XiaoDong=王^小东"
    assert item["patient"]["allergies"] == "Iodine contrast"
    assert item["priority"] == "STAT"

    assert api.get(URL, {"modality": "MR"}).json()["count"] == 1
    assert api.get(URL, {"station": "CT_*"}).json()["count"] == 3
    assert api.get(URL, {"patient_name": "wang*"}).json()["count"] == 2
    assert (
        api.get(URL, {"accession_number": step.requested_procedure.order.accession_number}).json()["count"]
        == 1
    )
    assert AuditEvent.objects.filter(action="worklist.search").count() == 5  # one per request


def test_final_steps_and_status_filter(api_for, mwl_data):
    from scheduling.services import procedure_cancel

    procedure_cancel(procedure=mwl_data["steps"]["smith_mr"].requested_procedure, reason="patient declined")
    api = api_for("technologist")
    assert api.get(URL).json()["count"] == 3
    assert api.get(URL, {"include_final": "true"}).json()["count"] == 4
    assert api.get(URL, {"status": "CANCELED"}).json()["count"] == 1


def test_invalid_parameters_are_400(api_for, mwl_data):
    api = api_for("technologist")
    assert api.get(URL, {"date_from": "2026-13-01"}).status_code == 400
    today = at_today(0).date()
    bad = {"date_from": today.isoformat(), "date_to": (today - timedelta(days=1)).isoformat()}
    assert api.get(URL, bad).status_code == 400


def test_constant_queries(api_for, mwl_data, wang):
    from .conftest import schedule

    api = api_for("dept_head")
    api.get(URL)  # warm up (session, roles)
    with CaptureQueriesContext(connection) as few:
        api.get(URL)
    for hour in range(8, 20):
        schedule(
            patient=wang, station=mwl_data["stations"]["CT_GB"], start=at_today(hour) + timedelta(days=4)
        )
    with CaptureQueriesContext(connection) as many:
        assert api.get(URL).json()["count"] == 16
    assert len(few.captured_queries) == len(many.captured_queries)
