"""The API keeps the web form's rules: no booking in the past, duplicate patients need a
confirmation; creating POSTs accept an Idempotency-Key (race-safe)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from registration.models import Patient
from ris.models import IdempotencyKey
from scheduling import services
from scheduling.models import Order
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, make_order, next_slot

PROBLEM = "application/problem+json"


@pytest.fixture
def ct(db):
    station = StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT", duration_minutes=15)
    return station


def _order(patient, start=None, **over):
    return {
        "patient": patient.pk,
        "procedure_code": "CTHEAD",
        "station_ae_title": "CT1",
        "start": (start or next_slot()).isoformat(),
        **over,
    }


def test_order_in_the_past_is_refused(api_for, ct):
    start = timezone.localtime().replace(second=0, microsecond=0) - timedelta(hours=2)
    resp = api_for("front_desk").post("/api/v1/orders/", _order(PatientFactory(), start), format="json")
    assert resp.status_code == 400 and resp["Content-Type"] == PROBLEM
    assert "already passed" in resp.json()["errors"]["start"][0]
    assert Order.objects.count() == 0


def test_reschedule_into_the_past_is_refused(api_for, ct):
    proc = make_order(station=ct).procedures.get()
    past = timezone.now() - timedelta(days=1)
    resp = api_for("front_desk").post(
        f"/api/v1/procedures/{proc.pk}/reschedule/",
        {"start": past.isoformat(), "reason": "patient asked"},
        format="json",
    )
    assert resp.status_code == 400
    assert "start" in resp.json()["errors"]


PATIENT = {"family_name": "Wang", "given_name": "XiaoDong", "birth_date": "1980-05-01", "sex": "M"}


def test_likely_duplicate_patient_needs_confirmation(api_for, db):
    existing = PatientFactory(family_name="Wang", given_name="XiaoDong", birth_date=date(1980, 5, 1))
    api = api_for("front_desk")
    refused = api.post("/api/v1/patients/", PATIENT, format="json")
    assert refused.status_code == 409 and refused["Content-Type"] == PROBLEM
    body = refused.json()
    assert body["code"] == "possible_duplicate"
    assert [c["id"] for c in body["candidates"]] == [existing.pk]
    assert "confirm_duplicate" in body["errors"]
    assert Patient.objects.count() == 1
    confirmed = api.post("/api/v1/patients/", {**PATIENT, "confirm_duplicate": True}, format="json")
    assert confirmed.status_code == 201, confirmed.content
    assert Patient.objects.count() == 2
    # Another birth date is another person: no confirmation needed.
    other = api.post("/api/v1/patients/", {**PATIENT, "birth_date": "1981-05-01"}, format="json")
    assert other.status_code == 201


def test_duplicate_check_matches_the_characters_too(api_for, db):
    PatientFactory(ideographic_family="王", ideographic_given="小东", birth_date=date(1980, 5, 1))
    resp = api_for("front_desk").post(
        "/api/v1/patients/", {"chinese_name": "王小东", "birth_date": "1980-05-01", "sex": "M"}, format="json"
    )
    assert resp.status_code == 409


def test_same_idempotency_key_replays_the_order(api_for, ct):
    api = api_for("front_desk")
    patient = PatientFactory()
    payload = _order(patient)
    first = api.post("/api/v1/orders/", payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/v1/orders/", payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    different = api.post(
        "/api/v1/orders/", {**payload, "reason": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert different.status_code == 422 and different["Content-Type"] == PROBLEM
    assert different.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_idempotency_key_is_per_user_and_errors_are_not_kept(api_for, ct, users):
    patient = PatientFactory()
    bad = api_for("front_desk").post(
        "/api/v1/orders/", _order(patient, procedure_code="NOPE"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert bad.status_code == 400
    assert not IdempotencyKey.objects.exists()
    fixed = api_for("front_desk").post(
        "/api/v1/orders/", _order(patient), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert fixed.status_code == 201
    # The same key from another user is that user's own key.
    other = api_for("admin").post(
        "/api/v1/orders/", _order(PatientFactory(), next_slot(120)), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert other.status_code == 201
    assert Order.objects.count() == 2


def test_expired_key_is_forgotten(api_for, ct, settings):
    api = api_for("front_desk")
    patient = PatientFactory()
    assert (
        api.post("/api/v1/orders/", _order(patient), format="json", HTTP_IDEMPOTENCY_KEY="k-3").status_code
        == 201
    )
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = api.post(
        "/api/v1/orders/", _order(patient, next_slot(120)), format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert again.status_code == 201
    assert Order.objects.count() == 2


def test_patient_create_is_idempotent_too(api_for, db):
    api = api_for("front_desk")
    body = {"family_name": "Li", "given_name": "Na", "birth_date": "1990-01-02", "sex": "F"}
    a = api.post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    b = api.post("/api/v1/patients/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    assert Patient.objects.count() == 1


def _others_waiting_on_a_lock() -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_retries_create_one_order(users, monkeypatch):
    """Two connections send the same key at once: the second waits on the unique index while
    the first holds its transaction open, then replays the first answer."""
    StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT", duration_minutes=15)
    patient = PatientFactory()
    payload = _order(patient)
    real_create = services.order_create
    saw_waiter = threading.Event()

    def slow_first_create(**kwargs):
        # The first request keeps its transaction open until the other one is seen blocked.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not saw_waiter.is_set():
            if _others_waiting_on_a_lock():
                saw_waiter.set()
                break
            time.sleep(0.05)
        return real_create(**kwargs)

    monkeypatch.setattr(services, "order_create", slow_first_create)
    key = str(uuid.uuid4())
    results: list = [None, None]
    start = threading.Barrier(2)

    def post(i):
        try:
            client = APIClient()
            client.force_authenticate(users["front_desk"])
            start.wait(timeout=30)
            results[i] = client.post("/api/v1/orders/", payload, format="json", HTTP_IDEMPOTENCY_KEY=key)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert saw_waiter.is_set(), "the second request never waited on the first"
    assert [r.status_code for r in results] == [201, 201]
    assert results[0].json()["accession_number"] == results[1].json()["accession_number"]
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
