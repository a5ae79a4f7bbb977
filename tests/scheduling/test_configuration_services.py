"""Stations, downtime and the procedure catalog are written by scheduling's services only:
the admin, the API and the worklist importer all go through them, and every write is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from registration.services import patient_merge
from ris.errors import Conflict
from scheduling import services
from scheduling.models import Order, ProcedureType, Station, StationDowntime
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order

pytestmark = pytest.mark.django_db


def _audits(action: str, object_type: str, pk) -> int:
    return AuditEvent.objects.filter(action=action, object_type=object_type, object_id=str(pk)).count()


def test_station_services_validate_and_audit(users):
    station = services.station_create(
        ae_title="MRI9", name="MRI9", modality="MR", room="B2", actor=users["admin"]
    )
    assert _audits("station.create", "station", station.pk) == 1
    with pytest.raises(Conflict):
        services.station_create(ae_title="MRI9", name="X", modality="MR", actor=users["admin"])
    services.station_update(station=station, room="B3", actor=users["admin"])
    assert AuditEvent.objects.get(action="station.update", object_id=str(station.pk)).detail == {
        "fields": ["room"]
    }
    # An unchanged value writes nothing and audits nothing.
    services.station_update(station=station, room="B3", actor=users["admin"])
    assert _audits("station.update", "station", station.pk) == 1
    services.station_deactivate(station=station, actor=users["admin"])
    assert not Station.objects.get(pk=station.pk).active
    assert _audits("station.deactivate", "station", station.pk) == 1


def test_procedure_type_services_validate_and_audit(users):
    ptype = services.procedure_type_create(
        code_value="CT99", coding_scheme="99RIS", code_meaning="CT head", modality="CT", actor=users["admin"]
    )
    assert _audits("catalog.create", "procedure_type", ptype.pk) == 1
    with pytest.raises(Conflict):
        services.procedure_type_create(
            code_value="CT99", coding_scheme="99RIS", code_meaning="dup", modality="CT"
        )
    services.procedure_type_update(procedure_type=ptype, duration_minutes=30, actor=users["admin"])
    assert ProcedureType.objects.get(pk=ptype.pk).duration_minutes == 30
    assert _audits("catalog.update", "procedure_type", ptype.pk) == 1


def test_api_station_and_catalog_writes_are_audited(api_for):
    api = api_for("dept_head")
    resp = api.post(
        "/api/v1/stations/", {"ae_title": "CT77", "name": "CT77", "modality": "CT"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    pk = resp.json()["id"]
    assert _audits("station.create", "station", pk) == 1
    resp = api.patch(f"/api/v1/stations/{pk}/", {"active": False}, format="json")
    assert resp.status_code == 200 and resp.json()["active"] is False
    assert _audits("station.deactivate", "station", pk) == 1

    admin_api = api_for("admin")
    resp = admin_api.post(
        "/api/v1/procedure-types/",
        {"code_value": "XR7", "coding_scheme": "99RIS", "code_meaning": "XR hand", "modality": "DX"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    pk = resp.json()["id"]
    assert _audits("catalog.create", "procedure_type", pk) == 1
    resp = admin_api.patch(f"/api/v1/procedure-types/{pk}/", {"code_meaning": "XR left hand"}, format="json")
    assert resp.status_code == 200
    assert _audits("catalog.update", "procedure_type", pk) == 1


def test_admin_station_catalog_and_downtime_writes_are_audited(client_for):
    client = client_for("admin")
    data = {
        "ae_title": "US5",
        "name": "US5",
        "modality": "US",
        "room": "",
        "host": "",
        "charset_profile": Station._meta.get_field("charset_profile").default,
        "worklist_scope": Station._meta.get_field("worklist_scope").default,
        "work_start": "08:00",
        "work_end": "18:00",
        "slot_minutes": "15",
        "active": "on",
        "downtimes-TOTAL_FORMS": "0",
        "downtimes-INITIAL_FORMS": "0",
    }
    resp = client.post(reverse("admin:scheduling_station_add"), data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    station = Station.objects.get(ae_title="US5")
    assert _audits("station.create", "station", station.pk) == 1
    resp = client.post(reverse("admin:scheduling_station_change", args=[station.pk]), {**data, "room": "U1"})
    assert resp.status_code == 302
    assert Station.objects.get(pk=station.pk).room == "U1"
    assert _audits("station.update", "station", station.pk) == 1

    ptype = ProcedureTypeFactory()
    resp = client.post(
        reverse("admin:scheduling_proceduretype_change", args=[ptype.pk]),
        {
            "code_value": ptype.code_value,
            "coding_scheme": ptype.coding_scheme,
            "code_meaning": "Renamed",
            "modality": ptype.modality,
            "body_part": ptype.body_part,
            "duration_minutes": "20",
            "preparation": "",
            "active": "on",
        },
    )
    assert resp.status_code == 302
    assert _audits("catalog.update", "procedure_type", ptype.pk) == 1

    start = timezone.now() + timedelta(days=1)
    downtime = services.station_add_downtime(
        station=station, start=start, end=start + timedelta(hours=1), reason="service"
    )
    resp = client.post(
        reverse("admin:scheduling_stationdowntime_delete", args=[downtime.pk]), {"post": "yes"}
    )
    assert resp.status_code == 302
    assert not StationDowntime.objects.filter(pk=downtime.pk).exists()
    assert _audits("station.downtime_delete", "station", station.pk) == 1


def test_patient_merge_asks_scheduling_to_move_the_orders():
    temp, survivor = PatientFactory(is_temporary=True), PatientFactory()
    station = StationFactory()
    order = make_order(patient=temp, station=station)
    patient_merge(source=temp, target=survivor, actor=None)
    assert Order.objects.get(pk=order.pk).patient_id == survivor.pk
    merge = AuditEvent.objects.get(action="patient.merge", object_id=str(temp.pk))
    assert merge.detail["orders_moved"] == 1
