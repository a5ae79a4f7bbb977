"""The audit viewer: who may read it, what the filters find, and that reading is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from ris.roles import Role
from tests.factories import PatientFactory, UserFactory

ALLOWED = {Role.DEPT_HEAD, Role.ADMIN}


@pytest.fixture
def trail(db):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    p1, p2 = PatientFactory(patient_id="MRN001"), PatientFactory(patient_id="MRN002")
    audit_record(action="patient.view", actor=alice, object_type="patient", object_id=p1.pk, patient_id=p1.pk)
    audit_record(action="patient.view", actor=bob, object_type="patient", object_id=p2.pk, patient_id=p2.pk)
    audit_record(action="report.sign", actor=bob, object_type="report", object_id=7, patient_id=p1.pk)
    audit_record(action="login", actor=alice, object_type="user", outcome="failure")
    return {"alice": alice, "bob": bob, "p1": p1, "p2": p2}


def rows(response):
    return list(response.context["page"].object_list)


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.ALL)
def test_only_dept_head_and_admin_may_read(client_for, api_for, role):
    expected = 200 if role in ALLOWED else 403
    assert client_for(role).get(reverse("audit:event_list")).status_code == expected
    assert api_for(role).get("/api/v1/audit/events/").status_code == expected
    searches = AuditEvent.objects.filter(action="audit.search").count()
    assert searches == (2 if role in ALLOWED else 0)


@pytest.mark.django_db
def test_filters(trail, client_for):
    c = client_for(Role.DEPT_HEAD)
    url = reverse("audit:event_list")
    by_patient = rows(c.get(url, {"patient": "MRN001"}))
    assert {(e.action, e.actor_username) for e in by_patient} == {
        ("patient.view", "alice"),
        ("report.sign", "bob"),
    }
    assert {e.action for e in rows(c.get(url, {"user": "BOB"}))} == {"patient.view", "report.sign"}
    assert [e.action for e in rows(c.get(url, {"action": "report."}))] == ["report.sign"]
    # Patients are shown by their ID, resolved in one query for the page.
    page = c.get(url, {"action": "report."})
    assert "MRN001 (RIS)" in page.content.decode()
    assert [e.action for e in rows(c.get(url, {"outcome": "failure"}))] == ["login"]
    assert rows(c.get(url, {"patient": "NO-SUCH-ID"})) == []
    today = timezone.localdate()
    assert len(rows(c.get(url, {"since": today.isoformat(), "user": "alice"}))) == 2
    assert rows(c.get(url, {"until": (today - timedelta(days=1)).isoformat(), "user": "alice"})) == []


@pytest.mark.django_db
def test_reading_is_audited_with_the_query(trail, client_for, users):
    c = client_for(Role.DEPT_HEAD)
    c.get(reverse("audit:event_list"), {"patient": "MRN001", "action": "patient."})
    ev = AuditEvent.objects.filter(action="audit.search").latest("id")
    assert ev.actor_username == users[Role.DEPT_HEAD].username
    assert ev.patient_ref == trail["p1"].pk
    assert ev.detail["query"] == {"patient": "MRN001", "action": "patient."}
    assert ev.detail["shown"] == 1


@pytest.mark.django_db
def test_invalid_search_shows_errors_and_reads_nothing(trail, client_for):
    c = client_for(Role.DEPT_HEAD)
    r = c.get(reverse("audit:event_list"), {"since": "2026-02-10", "until": "2026-02-01"})
    assert r.status_code == 200
    assert r.context["page"] is None
    assert not AuditEvent.objects.filter(action="audit.search").exists()


@pytest.mark.django_db
def test_paging_without_count(trail, client_for, monkeypatch):
    monkeypatch.setattr("audit.views.PAGE_SIZE", 1)
    c = client_for(Role.DEPT_HEAD)
    first = c.get(reverse("audit:event_list"), {"user": "alice"})
    second = c.get(reverse("audit:event_list"), {"user": "alice", "page": 2})
    third = c.get(reverse("audit:event_list"), {"user": "alice", "page": 3})
    assert first.context["page"].has_next is True
    assert second.context["page"].has_next is False and second.context["page"].has_previous is True
    # Newest first: the failed login was recorded after the patient view.
    assert [e.action for e in rows(first) + rows(second)] == ["login", "patient.view"]
    assert rows(third) == []


@pytest.mark.django_db
def test_api_filters_and_cursor(trail, api_for):
    api = api_for(Role.ADMIN)
    r = api.get("/api/v1/audit/events/", {"patient": "MRN002"})
    assert r.status_code == 200
    assert [(e["action"], e["actor_username"]) for e in r.json()["results"]] == [("patient.view", "bob")]
    r = api.get("/api/v1/audit/events/", {"page_size": 1, "user": "bob"})
    body = r.json()
    assert len(body["results"]) == 1 and body["next"]
    assert api.get("/api/v1/audit/events/", {"outcome": "bogus"}).status_code == 400
    assert AuditEvent.objects.filter(action="audit.search", detail__api=True).count() == 2


@pytest.mark.django_db
def test_the_viewer_cannot_change_events(trail, client_for):
    # The page is read-only: there is no write endpoint, and POST is refused.
    c = client_for(Role.ADMIN)
    assert c.post(reverse("audit:event_list"), {}).status_code == 405


@pytest.mark.django_db
def test_query_count_does_not_grow_with_the_page(client_for, django_assert_max_num_queries):
    c = client_for(Role.DEPT_HEAD)
    patients = [PatientFactory() for _ in range(20)]
    for p in patients:
        audit_record(action="patient.view", object_type="patient", object_id=p.pk, patient_id=p.pk)
    c.get(reverse("audit:event_list"))  # warm the session/user caches
    with django_assert_max_num_queries(10):
        r = c.get(reverse("audit:event_list"), {"action": "patient."})
    assert len(rows(r)) == 20
