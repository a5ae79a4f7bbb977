"""DICOMweb and WADO-URI refusals: proper status codes and content types (never ``*/*``)."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from imaging import services
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def indexed(receive):
    ds = ct_dataset(accession="")
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    return ds


def _wado(ds, content_type="application/dicom"):
    return (
        f"/wado?requestType=WADO&studyUID={ds.StudyInstanceUID}&seriesUID={ds.SeriesInstanceUID}"
        f"&objectUID={ds.SOPInstanceUID}&contentType={content_type}"
    )


def _rs(ds, suffix=""):
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}{suffix}"
    )


def _problem(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.content[:200])
    assert resp["Content-Type"] == PROBLEM, resp["Content-Type"]
    body = resp.json()
    assert body["status"] == status and body["detail"] and body["code"]
    return body


@pytest.mark.parametrize("kind", ["wado", "rs", "rendered", "stow"])
def test_anonymous_is_401_with_a_challenge(indexed, kind):
    client = APIClient()
    if kind == "stow":
        resp = client.post("/dicomweb/studies", data=b"x", content_type="multipart/related; boundary=x")
    else:
        url = {"wado": _wado(indexed), "rs": _rs(indexed), "rendered": _rs(indexed, "/rendered")}[kind]
        resp = client.get(url, HTTP_ACCEPT="*/*")
    body = _problem(resp, 401)
    assert body["code"] == "not_authenticated"
    assert resp["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize("kind", ["wado", "rs", "rendered"])
def test_forbidden_role_is_403_problem(api_for, indexed, kind):
    url = {"wado": _wado(indexed), "rs": _rs(indexed), "rendered": _rs(indexed, "/rendered")}[kind]
    body = _problem(api_for("front_desk").get(url, HTTP_ACCEPT="*/*"), 403)
    assert body["code"] == "permission_denied"


def test_bad_parameters_and_missing_objects(api_for, indexed):
    api = api_for("radiologist")
    _problem(api.get(_wado(indexed).replace(indexed.SOPInstanceUID, "1.02.x")), 400)
    _problem(api.get(_wado(indexed).replace("WADO&", "XX&")), 400)
    _problem(api.get(_wado(indexed).replace(indexed.SeriesInstanceUID, generate_uid())), 404)
    _problem(api.get(_wado(indexed, "text/html")), 406)
    _problem(api.get(_rs(indexed).replace(indexed.SOPInstanceUID, "abc")), 400)
    _problem(api.get(f"/dicomweb/studies/{generate_uid()}"), 404)


def test_unacceptable_accept_is_406(api_for, indexed):
    api = api_for("radiologist")
    _problem(api.get(_rs(indexed), HTTP_ACCEPT="application/json"), 406)
    _problem(api.get(_rs(indexed, "/rendered"), HTTP_ACCEPT="text/html"), 406)
    ok = api.get(_rs(indexed, "/rendered"), HTTP_ACCEPT="image/png")
    assert ok.status_code == 200 and ok["Content-Type"] == "image/png"


def test_stow_refusals_are_problems(api_for):
    api = api_for("technologist")
    _problem(api.post("/dicomweb/studies", data=b"x", content_type="application/dicom"), 415)
    _problem(
        api_for("radiologist").post(
            "/dicomweb/studies", data=b"x", content_type="multipart/related; boundary=x"
        ),
        403,
    )
