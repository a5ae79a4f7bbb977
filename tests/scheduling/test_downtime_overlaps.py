"""Downtime over booked patients is never recorded silently: every path lists the bookings first."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduling.models import SPSStatus, StationDowntime
from scheduling.selectors import downtime_overlapping_bookings
from scheduling.services import DowntimeOverlapsBookings, procedure_cancel, station_add_downtime
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order


def _day_at(hour: int, minute: int = 0, days: int = 2) -> datetime:
    day = timezone.localdate() + timedelta(days=days)
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone()).replace(
        hour=hour, minute=minute
    )


@pytest.fixture
def booked(db):
    station = StationFactory(ae_title="CTDT1", modality="CT")
    ptype = ProcedureTypeFactory(modality="CT", duration_minutes=15)
    wang = PatientFactory(family_name="Wang", given_name="Lei")
    li = PatientFactory(family_name="Li", given_name="Na")
    at_10 = make_order(patient=wang, station=station, procedure_type=ptype, start=_day_at(10))
    at_1030 = make_order(patient=li, station=station, procedure_type=ptype, start=_day_at(10, 30))
    make_order(station=station, procedure_type=ptype, start=_day_at(12))  # outside the downtime
    return station, at_10, at_1030


def test_selector_lists_only_live_bookings_in_the_window(booked):
    station, at_10, at_1030 = booked
    found = downtime_overlapping_bookings(station=station, start=_day_at(10), end=_day_at(11))
    assert [s.requested_procedure.order for s in found] == [at_10, at_1030]
    procedure_cancel(procedure=at_1030.procedures.get(), reason="Patient request")
    found = downtime_overlapping_bookings(station=station.pk, start=_day_at(10), end=_day_at(11))
    assert [s.requested_procedure.order for s in found] == [at_10]
    assert found[0].status == SPSStatus.SCHEDULED
    # a booking that ends exactly when the downtime starts does not overlap
    assert downtime_overlapping_bookings(station=station, start=_day_at(10, 15), end=_day_at(10, 30)) == []


def test_service_refuses_unless_confirmed(booked):
    station, *_ = booked
    with pytest.raises(DowntimeOverlapsBookings) as info:
        station_add_downtime(station=station, start=_day_at(10), end=_day_at(11), reason="Tube")
    assert len(info.value.overlaps) == 2 and not StationDowntime.objects.exists()
    station_add_downtime(
        station=station, start=_day_at(10), end=_day_at(11), reason="Tube", confirm_overlaps=True
    )
    assert StationDowntime.objects.count() == 1
    # free time needs no confirmation
    station_add_downtime(station=station, start=_day_at(14), end=_day_at(15), reason="Service")
    assert StationDowntime.objects.count() == 2


def _calendar_post(station, **extra):
    return {
        "station": station.pk,
        "day": _day_at(10).date().isoformat(),
        "start_time": "10:00",
        "end_time": "11:00",
        "reason": "Tube replacement",
        **extra,
    }


def test_calendar_lists_overlaps_before_saving(client_for, booked):
    station, at_10, at_1030 = booked
    client = client_for("dept_head")
    resp = client.post(reverse("scheduling:downtime_add"), _calendar_post(station))
    assert resp.status_code == 200 and not StationDowntime.objects.exists()
    html = resp.content.decode()
    assert 'data-testid="downtime-overlaps"' in html
    assert at_10.accession_number in html and at_1030.accession_number in html
    resp = client.post(reverse("scheduling:downtime_add"), _calendar_post(station, confirm_overlaps="1"))
    assert resp.status_code == 302 and StationDowntime.objects.get().reason == "Tube replacement"


def test_equipment_page_lists_overlaps_and_needs_the_tick(client_for, booked):
    station, at_10, _ = booked
    client = client_for("dept_head")
    fmt = "%Y-%m-%dT%H:%M"
    data = {
        "station": station.pk,
        "start": _day_at(10).strftime(fmt),
        "end": _day_at(11).strftime(fmt),
        "reason": "Tube",
    }
    resp = client.post(reverse("department:equipment"), data)
    assert resp.status_code == 200 and not StationDowntime.objects.exists()
    assert at_10.accession_number in resp.content.decode()
    assert 'data-testid="confirm-overlaps"' in resp.content.decode()
    resp = client.post(reverse("department:equipment"), {**data, "confirm_overlaps": "on"})
    assert resp.status_code == 302 and StationDowntime.objects.count() == 1


def test_admin_refuses_until_confirmed(client_for, booked):
    station, at_10, _ = booked
    client = client_for("admin")
    url = reverse("admin:scheduling_stationdowntime_add")
    data = {
        "station": station.pk,
        "start_0": _day_at(10).date().isoformat(),
        "start_1": "10:00:00",
        "end_0": _day_at(10).date().isoformat(),
        "end_1": "11:00:00",
        "reason": "Tube",
    }
    resp = client.post(url, data)
    assert resp.status_code == 200 and not StationDowntime.objects.exists()
    assert at_10.accession_number in resp.content.decode()
    resp = client.post(url, {**data, "confirm_overlaps": "on"})
    assert resp.status_code == 302 and StationDowntime.objects.count() == 1


def test_api_answers_409_with_the_overlaps_unless_confirmed(api_for, booked):
    station, at_10, at_1030 = booked
    api = api_for("dept_head")
    url = f"/api/v1/stations/{station.pk}/downtime/"
    body = {"start": _day_at(10).isoformat(), "end": _day_at(11).isoformat(), "reason": "Tube"}
    resp = api.post(url, body, format="json")
    assert resp.status_code == 409, resp.content
    listed = " ".join(resp.json()["errors"]["confirm_overlaps"])
    assert at_10.accession_number in listed and at_1030.accession_number in listed
    assert not StationDowntime.objects.exists()
    resp = api.post(url, {**body, "confirm_overlaps": True}, format="json")
    assert resp.status_code == 201 and resp.json()["reason"] == "Tube"
    assert api_for("front_desk").post(url, body, format="json").status_code == 403


@pytest.mark.browser
def test_calendar_downtime_warns_in_the_browser(page_for, booked):
    station, at_10, _ = booked
    day = _day_at(10).date().isoformat()
    page = page_for("dept_head", language="zh-hans")
    page.goto(f"{page.base_url}/calendar/?station={station.pk}&day={day}")
    page.fill('input[name="start_time"]', "10:00")
    page.fill('input[name="end_time"]', "11:00")
    page.fill('input[name="reason"]', "球管更换")
    page.locator('input[name="reason"]').press("Enter")
    table = page.locator('[data-testid="downtime-overlaps"]')
    table.wait_for()
    assert page.locator('[data-testid="overlap-row"]').count() == 2
    assert "WANG" in table.inner_text() and at_10.accession_number in table.inner_text()
    assert not StationDowntime.objects.exists()
    page.click('[data-testid="downtime-confirm"]')
    page.wait_for_url(re.compile(r"/calendar/\?station="))
    assert StationDowntime.objects.get().reason == "球管更换"
