"""The viewer's page, manifest and preferences endpoints; launch links on the other pages."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from viewer import demo
from viewer.models import ViewerPreference
from viewer.selectors import volume_check

SMALL = dict(rows=8, columns=8, slices=5, pixel_spacing=1.0, slice_spacing=2.0, origin=(0.0, 0.0, 0.0))


@pytest.fixture
def small_exam(imaged_exam):
    return imaged_exam(phantom_obj=demo.Phantom(**SMALL))


def _page(uid):
    return reverse("viewer:study", args=[uid])


def test_radiologist_opens_the_viewer_one_audit_event(client_for, small_exam):
    study = small_exam.studies.get()
    resp = client_for("radiologist").get(_page(small_exam.study_instance_uid))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "viewer/viewer.js" in html and 'id="viewer-config"' in html
    events = AuditEvent.objects.filter(action="viewer.open")
    assert events.count() == 1
    assert events.get().object_id == str(study.pk) and events.get().patient_ref == study.patient_id


@pytest.mark.parametrize("role", ["front_desk"])
def test_roles_without_imaging_view_are_refused(client_for, small_exam, role):
    c = client_for(role)
    resp = c.get(_page(small_exam.study_instance_uid))
    assert resp.status_code == 403
    assert "You may not open these images" in resp.content.decode()
    assert c.get(reverse("viewer:manifest", args=[small_exam.study_instance_uid])).status_code == 403
    assert not AuditEvent.objects.filter(action="viewer.open").exists()
    assert AuditEvent.objects.filter(action="access.denied", detail__needed="imaging.view").count() == 2


def test_anonymous_is_sent_to_login(client, small_exam):
    resp = client.get(_page(small_exam.study_instance_uid))
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


def test_unknown_and_malformed_uids_are_404(client_for, db):
    c = client_for("radiologist")
    resp = c.get(_page("1.2.3.4.5"))
    assert resp.status_code == 404 and "Study not found" in resp.content.decode()
    assert c.get(_page("not-a-uid")).status_code == 404
    assert c.get(reverse("viewer:manifest", args=["1.2.3.4.5"])).json()["code"] == "not_found"


def test_technologist_outside_modality_scope_is_refused(client_for, users, small_exam):
    from ris.models import StaffProfile

    StaffProfile.objects.update_or_create(user=users["technologist"], defaults={"modalities": "MR"})
    assert client_for("technologist").get(_page(small_exam.study_instance_uid)).status_code == 403
    StaffProfile.objects.filter(user=users["technologist"]).update(modalities="CT")
    assert client_for("technologist").get(_page(small_exam.study_instance_uid)).status_code == 200


def test_study_found_by_the_order_uid_when_the_modality_used_another(client_for, ct_exam, tmp_path):
    proc = ct_exam()
    items = list(demo.for_procedure(proc, demo.Phantom(**SMALL)))
    other = "1.2.826.0.1.3680043.8.498.999"
    for ds in items:
        ds.StudyInstanceUID = other
    demo.receive_and_ingest(items, workdir=tmp_path)
    from imaging.models import Study

    # The UIDs disagree, so ingest queues it for reconciliation; a person links it there.
    Study.objects.filter(study_instance_uid=other).update(requested_procedure=proc)
    resp = client_for("radiologist").get(_page(proc.study_instance_uid))
    assert resp.status_code == 200 and other in resp.content.decode()


def test_manifest_is_one_query_sorted_by_position_with_volume_verdict(client_for, small_exam):
    c = client_for("radiologist")
    study = small_exam.studies.get()
    from viewer import selectors

    with CaptureQueriesContext(connection) as ctx:
        data = selectors.study_manifest(study=study)
    assert len(ctx.captured_queries) == 1
    (series,) = data["series"]
    assert [i["position"][2] for i in series["instances"]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert series["volume"] == {"ok": True, "reason": ""}
    first = series["instances"][0]
    assert first["url"].startswith("/wado?requestType=WADO&contentType=application%2Fdicom&studyUID=")
    assert (first["rows"], first["columns"], first["spacing"], first["slope"], first["intercept"]) == (
        8,
        8,
        [1.0, 1.0],
        1.0,
        -1024.0,
    )
    resp = c.get(reverse("viewer:manifest", args=[small_exam.study_instance_uid]))
    assert resp.status_code == 200 and resp.json()["study"]["accession"] == small_exam.order.accession_number
    assert AuditEvent.objects.filter(action="viewer.manifest").count() == 1
    # The object the manifest points at is served by imaging's WADO-URI.
    wado = c.get(first["url"])
    assert wado.status_code == 200 and wado["Content-Type"] == "application/dicom"


def _inst(z, **kw):
    base = {
        "frames": 1,
        "rows": 4,
        "columns": 4,
        "position": [0, 0, z],
        "orientation": [1, 0, 0, 0, 1, 0],
        "spacing": [1.0, 1.0],
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    ("instances", "modality", "reason"),
    [
        ([_inst(z) for z in (0, 2, 4, 6)], "CT", ""),
        ([_inst(z) for z in (0, 2, 4, 6)], "CR", "MPR is offered for CT, MR, PET and NM"),
        ([_inst(0), _inst(2)], "CT", "at least 3 slices"),
        ([_inst(0), _inst(2, frames=10), _inst(4)], "CT", "multi-frame"),
        (
            [_inst(0), _inst(2, spacing=None), _inst(4)],
            "CT",
            "lack Image Position, Image Orientation or Pixel Spacing",
        ),
        ([_inst(0), _inst(2, spacing=[0.5, 0.5]), _inst(4)], "CT", "same pixel spacing"),
        ([_inst(0), _inst(2, rows=8), _inst(4)], "CT", "same matrix size"),
        ([_inst(0), _inst(2, orientation=[0, 1, 0, 0, 0, -1]), _inst(4)], "CT", "same orientation"),
        ([_inst(z) for z in (0, 2, 8, 10)], "CT", "Slice gap of 6.0 mm (2 slices missing) at 2.0 mm"),
        ([_inst(z) for z in (0, 2, 2, 4)], "CT", "share a position"),
        ([_inst(z) for z in (0, 2, 3.2, 5.2, 7.2)], "CT", "irregular"),
    ],
)
def test_volume_check_says_why_a_series_is_not_a_volume(instances, modality, reason):
    ok, why = volume_check(modality=modality, qc={}, instances=instances)
    assert ok is (reason == "")
    assert reason in why


def test_volume_check_reuses_imaging_series_qc(small_exam):
    series = small_exam.studies.get().series.get()
    assert series.qc["geometry"]["consistent"] is True  # imaging.qc computed it on ingest
    qc = {"geometry": {**series.qc["geometry"], "consistent": False, "irregular_steps": 1}}
    from viewer.selectors import study_manifest

    instances = study_manifest(study=small_exam.studies.get())["series"][0]["instances"]
    assert volume_check(modality="CT", qc=qc, instances=instances)[0] is False


def test_preferences_are_per_user_and_validated(client_for, users):
    c = client_for("radiologist")
    url = reverse("viewer:preferences")
    assert c.get(url).json() == {}
    resp = c.put(
        url, json.dumps({"layout": "mpr", "presets": {"ct": "lung"}, "tool": "length"}), "application/json"
    )
    assert resp.status_code == 200 and resp.json() == {
        "layout": "mpr",
        "presets": {"CT": "lung"},
        "tool": "length",
    }
    c.put(url, json.dumps({"presets": {"MR": "brain"}}), "application/json")
    assert c.get(url).json()["presets"] == {"CT": "lung", "MR": "brain"}
    assert c.put(url, json.dumps({"layout": "9x9"}), "application/json").status_code == 400
    assert c.put(url, "not json", "application/json").status_code == 400
    assert client_for("reviewer").get(url).json() == {}
    assert client_for("front_desk").get(url).status_code == 403
    assert ViewerPreference.objects.get(user=users["radiologist"]).data["layout"] == "mpr"


def test_viewer_links_on_worklist_editor_study_page_and_console(client_for, small_exam, settings):
    uid = small_exam.study_instance_uid
    href = _page(uid)
    rad = client_for("radiologist")
    assert href in rad.get(reverse("reports:reading_worklist")).content.decode()
    editor = rad.post(reverse("reports:claim", args=[small_exam.pk]), follow=True).content.decode()
    assert href in editor and "ris-viewer" in editor
    study = small_exam.studies.get()
    assert (
        href
        in client_for("technologist").get(reverse("imaging:study_detail", args=[study.pk])).content.decode()
    )
    from django.utils import timezone

    day = timezone.localtime(small_exam.steps.get().start).date().isoformat()
    console = client_for("technologist").get(reverse("worklist:console") + f"?day={day}").content.decode()
    assert small_exam.order.accession_number in console and href in console
    # An external viewer stays possible beside the built-in one.
    settings.RIS_VIEWER_URL_TEMPLATE = "http://ohif.example/viewer?StudyInstanceUIDs={study_instance_uid}"
    editor = rad.post(reverse("reports:claim", args=[small_exam.pk]), follow=True).content.decode()
    assert f"http://ohif.example/viewer?StudyInstanceUIDs={uid}" in editor and href in editor


def test_no_viewer_link_for_roles_without_imaging_view(client_for, small_exam):
    from django.template import Context, Template
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    from tests.factories import UserFactory

    request.user = UserFactory(role="front_desk")
    html = Template("{% load viewer_tags %}{% viewer_link uid %}").render(
        Context({"request": request, "uid": small_exam.study_instance_uid})
    )
    assert html == ""


def test_seed_viewer_demo_attaches_a_volume_to_a_reading_worklist_exam(db, ct_exam, settings):
    from django.core.management import call_command
    from django.utils import timezone

    from scheduling.services import procedure_images_available

    proc = ct_exam()
    procedure_images_available(procedure=proc, at=timezone.now())
    call_command("seed_viewer_demo", slices=4, size=16)
    study = proc.studies.get()
    assert study.num_instances == 4 and study.description.startswith(demo.DEMO_PREFIX)
    call_command("seed_viewer_demo", slices=4, size=16)  # idempotent
    assert proc.studies.count() == 1
