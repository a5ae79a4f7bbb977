"""REST API: every action, roles, password at signing, OpenAPI."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from reports.models import Report

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

BASE = "/api/v1/reports/"


def test_full_lifecycle_over_the_api(api_for, make_exam):
    exam = make_exam()
    rad, rev = api_for("radiologist"), api_for("reviewer")
    r = rad.post(f"{BASE}claim/", {"requested_procedure": exam.pk}, format="json")
    assert r.status_code == 201, r.content
    rid, rev_no = r.json()["id"], r.json()["revision"]
    r = rad.post(
        f"{BASE}{rid}/save/",
        {"findings": "Nodule 6 mm RUL.", "impression": "Nodule.", "revision": rev_no},
        format="json",
    )
    assert r.status_code == 200 and r.json()["findings"] == "Nodule 6 mm RUL."
    stale = rad.post(
        f"{BASE}{rid}/save/", {"findings": "x", "impression": "y", "revision": rev_no}, format="json"
    )
    assert stale.status_code == 409
    assert rad.post(f"{BASE}{rid}/submit/", {}, format="json").json()["status"] == "preliminary"
    # A resident (radiologist role) may not sign: 403.
    assert rad.post(f"{BASE}{rid}/sign/", {"password": PASSWORD}, format="json").status_code == 403
    no_pw = rev.post(f"{BASE}{rid}/sign/", {}, format="json")
    assert no_pw.status_code == 400 and "password" in no_pw.json()["errors"]
    assert rev.post(f"{BASE}{rid}/sign/", {"password": "bad"}, format="json").status_code == 400
    r = rev.post(f"{BASE}{rid}/sign/", {"password": PASSWORD}, format="json")
    assert r.status_code == 200 and r.json()["verified"] is True and r.json()["meaning"] == "approved"
    # Signed twice → 409; editing after final → 409.
    assert rev.post(f"{BASE}{rid}/sign/", {"password": PASSWORD}, format="json").status_code == 409
    assert (
        rad.post(f"{BASE}{rid}/save/", {"findings": "x", "impression": "y"}, format="json").status_code == 409
    )
    r = rev.post(
        f"{BASE}{rid}/addendum/",
        {"text": "Compared with prior: stable.", "password": PASSWORD},
        format="json",
    )
    assert r.status_code == 201 and r.json()["number"] == 1
    detail = rev.get(f"{BASE}{rid}/").json()
    assert detail["status"] == "amended"
    assert [v["kind"] for v in detail["versions"]] == ["draft", "preliminary", "final"]
    assert all(s["verified"] for s in detail["signatures"]) and len(detail["signatures"]) == 2
    r = rev.post(
        f"{BASE}{rid}/release/", {"kind": "release", "recipient": "Ward 5", "copies": 1}, format="json"
    )
    assert r.status_code == 201
    pdf = rev.get(f"{BASE}{rid}/pdf/")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert AuditEvent.objects.filter(action="report.view", object_id=str(rid)).count() == 1


def test_return_and_addendum_on_draft(api_for, make_report):
    rev = api_for("reviewer")
    prelim = make_report("preliminary")
    assert rev.post(f"{BASE}{prelim.pk}/return/", {"comment": ""}, format="json").status_code == 400
    r = rev.post(f"{BASE}{prelim.pk}/return/", {"comment": "Add measurements"}, format="json")
    assert (
        r.status_code == 200
        and r.json()["status"] == "draft"
        and r.json()["return_comment"] == "Add measurements"
    )
    r = rev.post(f"{BASE}{prelim.pk}/addendum/", {"text": "x", "password": PASSWORD}, format="json")
    assert r.status_code == 409
    assert Report.objects.get(pk=prelim.pk).status == "draft"


def test_critical_result_notify_acknowledge(api_for, make_report):
    rad = api_for("radiologist")
    report = make_report("final")
    r = rad.post(
        f"{BASE}{report.pk}/critical/", {"category": "2", "finding": "Pulmonary embolism"}, format="json"
    )
    assert r.status_code == 201
    cid = r.json()["id"]
    ack_early = rad.post(
        f"/api/v1/critical-results/{cid}/acknowledge/", {"acknowledged_by": "Dr A"}, format="json"
    )
    assert ack_early.status_code == 409
    r = rad.post(
        f"/api/v1/critical-results/{cid}/notify/", {"recipient": "Dr A", "method": "phone"}, format="json"
    )
    assert r.status_code == 200 and r.json()["notified_at"]
    assert (
        rad.post(
            f"/api/v1/critical-results/{cid}/notify/", {"recipient": "Dr A", "method": "phone"}, format="json"
        ).status_code
        == 409
    )
    r = rad.post(
        f"/api/v1/critical-results/{cid}/acknowledge/",
        {"acknowledged_by": "Dr A", "read_back": True},
        format="json",
    )
    assert r.status_code == 200 and r.json()["read_back"] is True
    assert api_for("front_desk").get("/api/v1/critical-results/").status_code == 403


def test_search_api_and_scope(api_for, make_report):
    signed = make_report("final", findings="左肺下叶见磨玻璃结节。", impression="磨玻璃结节。")
    make_report("draft", findings="磨玻璃结节 draft", impression="x")
    r = api_for("front_desk").get(f"{BASE}search/", {"q": "磨玻璃"})
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [signed.pk]
    assert AuditEvent.objects.filter(action="report.search").count() == 1
    listed = api_for("front_desk").get(BASE).json()["results"]
    assert {x["status"] for x in listed} == {"final"}
    assert api_for("technologist").get(BASE).status_code == 403


def test_peer_review_api_is_blinded(api_for, make_report, users):
    import random

    from reports import services
    from tests.factories import UserFactory

    make_report("final")
    peer = UserFactory(role="reviewer")
    review = services.peer_review_sample(share=1.0, rng=random.Random(0))[0]
    assert review.reviewer == peer
    from rest_framework.test import APIClient

    c = APIClient()
    c.force_authenticate(peer)
    body = c.get(f"/api/v1/peer-reviews/{review.pk}/").json()
    assert "author" not in body and "signed_by" not in body and body["findings"] == "Lungs clear."
    assert (
        c.post(f"/api/v1/peer-reviews/{review.pk}/score/", {"score": "3a"}, format="json").status_code == 400
    )
    r = c.post(
        f"/api/v1/peer-reviews/{review.pk}/score/",
        {"score": "3a", "comment": "Missed fracture"},
        format="json",
    )
    assert r.status_code == 200 and r.json()["score"] == "3a"
    assert api_for("radiologist").get(f"/api/v1/peer-reviews/{review.pk}/").status_code == 404


def test_openapi_documents_the_report_actions(api_for):
    r = api_for("admin").get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    paths = r.json()["paths"]
    for suffix in ["save/", "submit/", "sign/", "return/", "addendum/", "critical/"]:
        assert f"/api/v1/reports/{{id}}/{suffix}" in paths
    assert "/api/v1/critical-results/{id}/notify/" in paths
    assert "/api/v1/critical-results/{id}/acknowledge/" in paths
    sign = paths["/api/v1/reports/{id}/sign/"]["post"]
    assert "requestBody" in sign


def test_list_filters(api_for, make_report):
    final = make_report("final")
    draft = make_report("draft")
    c = api_for("reviewer")
    acc = final.requested_procedure.order.accession_number
    r = c.get(BASE, {"requested_procedure__order__accession_number": acc})
    assert [x["id"] for x in r.json()["results"]] == [final.pk]
    r = c.get(BASE, {"status": "draft"})
    assert [x["id"] for x in r.json()["results"]] == [draft.pk]
    r = c.get(BASE, {"status__in": "final,amended"})
    assert [x["id"] for x in r.json()["results"]] == [final.pk]
    assert AuditEvent.objects.filter(action="report.search").count() == 3
