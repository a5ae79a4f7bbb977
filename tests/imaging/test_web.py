"""Reconciliation workbench, study page, WADO-URI/WADO-RS and STOW-RS through HTTP."""

from __future__ import annotations

import io
import re

import pytest
from django.utils.html import escape
from PIL import Image
from pydicom.uid import generate_uid

from audit.models import AuditEvent
from imaging import services, storage
from imaging.models import LinkMethod, ReceivedObject, ReconciliationItem, Study, StudyLink
from scheduling.models import ProcedureStatus
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset, part10_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def unmatched(receive):
    """A study whose Patient ID disagrees with the order of its Accession Number."""
    patient = PatientFactory(patient_id="MRN-A", issuer="RIS", family_name="Li", given_name="Na")
    proc = make_order(patient=patient).procedures.select_related("order").get()
    datasets = [
        ct_dataset(
            study_uid=proc.study_instance_uid,
            accession=proc.order.accession_number,
            patient_id="WRONG-ID",
            patient_name="Li^Na",
            instance_number=i,
        )
        for i in range(2)
    ]
    receive(*datasets)
    services.study_ingest(study_instance_uid=proc.study_instance_uid)
    item = ReconciliationItem.objects.get()
    return item, proc, datasets


def test_queue_and_item_pages_need_permission_and_are_audited(client_for, unmatched):
    item, proc, _ = unmatched
    assert client_for("front_desk").get("/imaging/reconciliation/").status_code == 403
    page = client_for("technologist").get("/imaging/reconciliation/")
    assert page.status_code == 200
    assert b"WRONG-ID" in page.content and escape(item.get_reason_display()).encode() in page.content
    detail = client_for("technologist").get(f"/imaging/reconciliation/{item.pk}/")
    assert detail.status_code == 200
    rows = re.findall(rb'data-testid="candidate-row" data-procedure="(\d+)" data-rank="(\d)"', detail.content)
    assert rows[0] == (str(proc.pk).encode(), b"1")  # the Accession Number match ranks first
    assert AuditEvent.objects.filter(action="reconciliation.view", object_id=str(item.study_id)).count() == 1


def test_link_needs_confirmation_then_links_with_provenance(client_for, users, unmatched):
    item, proc, _ = unmatched
    c = client_for("technologist")
    first = c.post(f"/imaging/reconciliation/{item.pk}/", {"action": "link", "procedure": proc.pk})
    assert first.status_code == 302 and f"confirm={proc.pk}" in first["Location"]
    assert not StudyLink.objects.exists()
    confirm_page = c.get(first["Location"])
    assert b'data-testid="patient-warning"' in confirm_page.content
    done = c.post(
        f"/imaging/reconciliation/{item.pk}/",
        {"action": "link", "procedure": proc.pk, "confirmed": "yes", "note": "checked with the technologist"},
    )
    assert done.status_code == 302
    link = StudyLink.objects.get()
    assert (link.method, link.linked_by, link.requested_procedure_id) == (
        LinkMethod.MANUAL,
        users["technologist"],
        proc.pk,
    )
    item.refresh_from_db()
    assert item.resolved_at is not None and item.resolved_by == users["technologist"]
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED
    assert AuditEvent.objects.filter(action="study.link", actor_username="u_technologist").count() == 1


def test_unlink_returns_study_to_queue_and_withdraws_images(client_for, unmatched):
    item, proc, _ = unmatched
    services.study_link_manual(study=item.study, procedure=proc, actor=None)
    c = client_for("dept_head")
    assert c.post(f"/imaging/studies/{item.study_id}/unlink/", {"reason": "wrong patient"}).status_code == 302
    study = Study.objects.get()
    assert study.requested_procedure_id is None
    assert ReconciliationItem.objects.get(resolved_at__isnull=True).reason == "unlinked"
    assert StudyLink.objects.get().unlinked_at is not None
    proc.refresh_from_db()
    assert proc.images_available_at is None
    assert AuditEvent.objects.filter(action="study.unlink").count() == 1


def test_merge_temporary_registration_then_link(client_for, receive):
    real = PatientFactory(patient_id="REAL-1", issuer="RIS")
    temp = PatientFactory(patient_id="TRAUMA-7", issuer="RIS", is_temporary=True)
    proc = make_order(patient=temp).procedures.select_related("order").get()
    ds = ct_dataset(
        study_uid=proc.study_instance_uid, accession=proc.order.accession_number, patient_id="REAL-1"
    )
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    item = ReconciliationItem.objects.get()
    assert item.reason == "patient_mismatch"
    assert (
        client_for("technologist")
        .post(f"/imaging/reconciliation/{item.pk}/", {"action": "merge_link", "procedure": proc.pk})
        .status_code
        == 404
    )  # merging is the department head's decision
    client_for("dept_head").post(
        f"/imaging/reconciliation/{item.pk}/", {"action": "merge_link", "procedure": proc.pk}
    )
    temp.refresh_from_db()
    assert temp.merged_into_id == real.pk
    study = Study.objects.get()
    assert study.requested_procedure_id == proc.pk and study.patient_id == real.pk
    assert AuditEvent.objects.filter(action="patient.merge").count() == 1


@pytest.fixture
def indexed(receive):
    ds = ct_dataset(accession="")
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    return ds


def _wado(ds, content_type="application/dicom", **extra):
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
        "contentType": content_type,
        **extra,
    }
    return "/wado?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_wado_uri_returns_stored_bytes_and_renders(api_for, indexed):
    api = api_for("radiologist")
    r = api.get(_wado(indexed))
    assert r.status_code == 200 and r["Content-Type"] == "application/dicom"
    data = b"".join(r.streaming_content)
    assert data == part10_bytes(indexed)
    jpeg = api.get(_wado(indexed, "image/jpeg", rows=8))
    assert jpeg.status_code == 200 and jpeg["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (8, 8)
    assert AuditEvent.objects.filter(action="imaging.wado_uri").count() == 2


def test_wado_uri_refuses_bad_input_and_unauthorised(api_for, indexed):
    assert api_for("front_desk").get(_wado(indexed)).status_code == 403
    api = api_for("radiologist")
    bad = _wado(indexed).replace(indexed.SOPInstanceUID, "../../etc/passwd")
    assert api.get(bad).status_code == 400
    assert api.get(_wado(indexed).replace(indexed.SeriesInstanceUID, generate_uid())).status_code == 404
    assert api.get(_wado(indexed).replace("WADO&", "XX&")).status_code == 400


def test_wado_rs_retrieves_multipart(api_for, receive):
    study_uid = generate_uid()
    a, b = ct_dataset(study_uid=study_uid), ct_dataset(study_uid=study_uid)
    receive(a, b)
    services.study_ingest(study_instance_uid=study_uid)
    r = api_for("radiologist").get(
        f"/dicomweb/studies/{study_uid}", HTTP_ACCEPT='multipart/related; type="application/dicom"'
    )
    assert r.status_code == 200
    boundary = re.search(r"boundary=(\w+)", r["Content-Type"]).group(1).encode()
    body = b"".join(r.streaming_content)
    parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    assert len(parts) == 2
    payloads = {p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts}
    assert payloads == {part10_bytes(a), part10_bytes(b)}
    rendered = api_for("radiologist").get(
        f"/dicomweb/studies/{study_uid}/series/{a.SeriesInstanceUID}/instances/{a.SOPInstanceUID}/rendered"
    )
    assert rendered.status_code == 200 and rendered["Content-Type"] == "image/jpeg"


def _multipart(parts: list[tuple[str, bytes]], boundary="XyZ123"):
    body = b""
    for ctype, data in parts:
        body += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_rs_uses_the_durable_path_and_reports_failures(
    api_for, ordered_procedure, django_capture_on_commit_callbacks
):
    proc, _patient = ordered_procedure
    good = [
        ct_dataset(
            study_uid=proc.study_instance_uid, accession=proc.order.accession_number, patient_id="MRN100"
        )
        for _ in range(2)
    ]
    truncated = part10_bytes(ct_dataset())[:-50]
    body, ctype = _multipart(
        [("application/dicom", part10_bytes(d)) for d in good] + [("application/dicom", truncated)]
    )
    with django_capture_on_commit_callbacks(execute=True):
        r = api_for("technologist").post("/dicomweb/studies", data=body, content_type=ctype)
    assert r.status_code == 202, r.content
    payload = r.json()
    assert len(payload["00081199"]["Value"]) == 2
    assert payload["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    rows = list(ReceivedObject.objects.all())
    assert len(rows) == 2 and all(storage.sha256_of(o.relpath) == o.sha256 for o in rows)
    assert {o.source for o in rows} == {"stow"}
    # Celery is eager here: the study is indexed and linked after the request.
    assert Study.objects.get().requested_procedure_id == proc.pk
    # The same objects over C-STORE would be byte-identical duplicates.
    assert {storage.path_for(o.relpath).read_bytes() for o in rows} == {part10_bytes(d) for d in good}


def test_stow_rs_refuses_wrong_media_type_and_study(api_for):
    api = api_for("technologist")
    assert api.post("/dicomweb/studies", data=b"x", content_type="application/dicom").status_code == 415
    ds = ct_dataset()
    body, ctype = _multipart([("application/dicom", part10_bytes(ds))])
    r = api.post(f"/dicomweb/studies/{generate_uid()}", data=body, content_type=ctype)
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    assert api_for("radiologist").post("/dicomweb/studies", data=body, content_type=ctype).status_code == 403
    assert not ReceivedObject.objects.exists()


def test_workbench_speaks_chinese(client_for, unmatched, settings):
    c = client_for("technologist")
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    page = c.get("/imaging/reconciliation/")
    text = page.content.decode()
    assert "待匹配申请的检查" in text and "患者ID与申请的患者不一致" in text


def test_dead_objects_are_visible_on_the_workbench(client_for, receive, settings):
    ds = ct_dataset()
    receive(ds)
    ReceivedObject.objects.update(attempts=settings.RIS_INGEST_MAX_ATTEMPTS)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    page = client_for("dept_head").get("/imaging/reconciliation/").content.decode()
    assert 'data-testid="dead-objects"' in page and ds.SOPInstanceUID in page


def test_dead_object_retry_requeues_it_once_and_audits(
    client_for, receive, settings, monkeypatch, django_capture_on_commit_callbacks
):
    ds = ct_dataset()
    receive(ds)
    ReceivedObject.objects.update(attempts=settings.RIS_INGEST_MAX_ATTEMPTS)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    obj = ReceivedObject.objects.get()
    assert obj.state == "dead"
    sent = []
    monkeypatch.setattr("imaging.services._send_ingest", sent.append)
    url = f"/imaging/received/{obj.pk}/retry/"
    assert client_for("front_desk").post(url).status_code == 403
    c = client_for("dept_head")
    page = c.get("/imaging/reconciliation/").content.decode()
    assert f'action="{url}"' in page and "<title><section" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post(url)
        assert sent == []  # only after commit
    assert response.status_code == 302
    obj.refresh_from_db()
    assert (obj.state, obj.attempts, obj.last_error) == ("received", 0, "")
    assert sent == [ds.StudyInstanceUID]  # sent after commit
    assert AuditEvent.objects.filter(action="imaging.ingest_retry", object_id=str(obj.pk)).count() == 1
    # A second click (e.g. another tab) changes nothing and says so.
    followed = c.post(url, follow=True).content.decode()
    assert "no longer waiting for a retry" in followed
    assert sent == [ds.StudyInstanceUID]
    assert AuditEvent.objects.filter(action="imaging.ingest_retry").count() == 1
    # The ingest now indexes it (the cause was fixed).
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    obj.refresh_from_db()
    assert obj.state == "indexed"


def test_stow_rs_request_over_the_limit_is_413(api_for, settings):
    settings.RIS_STOW_MAX_REQUEST_BYTES = 1000
    body, ctype = _multipart([("application/dicom", part10_bytes(ct_dataset(rows=64, columns=64)))])
    assert api_for("technologist").post("/dicomweb/studies", data=body, content_type=ctype).status_code == 413
    assert not ReceivedObject.objects.exists()
