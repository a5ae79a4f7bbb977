"""A real DICOMweb client (dicomweb-client, token-authenticated) against the live server:
QIDO-RS at each level, WADO-RS metadata, frames and instance retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from imaging import services
from tests.imaging.dicom_data import ct_dataset


@pytest.fixture
def dicomweb(live_server, transactional_db, users, settings):
    # dicomweb-client sends "Host: localhost" without the port: URLs in answers use the base.
    settings.RIS_DICOMWEB_BASE_URL = f"{live_server.url}/dicomweb"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=users['radiologist']).key}"
    client = DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session, timeout=60)
    yield client
    session.close()


@pytest.fixture
def two_studies(transactional_db, receive):
    study_uid = generate_uid()
    series_uid = generate_uid()
    pixels = [np.full((8, 8), 10 * (k + 1), dtype=np.uint16) for k in range(2)]
    wang = [
        ct_dataset(
            study_uid=study_uid,
            series_uid=series_uid,
            patient_name="Wang^XiaoDong=王^小东",
            patient_id="MRN1",
            instance_number=k + 1,
            rows=8,
            columns=8,
            pixels=pixels[k],
        )
        for k in range(2)
    ]
    other = ct_dataset(patient_name="Smith^John", patient_id="MRN2", study_date="20250101")
    receive(*wang, other)
    services.study_ingest(study_instance_uid=study_uid)
    services.study_ingest(study_instance_uid=other.StudyInstanceUID)
    return wang, other, pixels


def test_qido_at_each_level(dicomweb, two_studies):
    wang, other, _ = two_studies
    found = dicomweb.search_for_studies(search_filters={"PatientID": "MRN1"})
    assert [s["0020000D"]["Value"][0] for s in found] == [wang[0].StudyInstanceUID]
    assert len(dicomweb.search_for_studies()) == 2
    assert [
        s["0020000D"]["Value"][0]
        for s in dicomweb.search_for_studies(search_filters={"StudyDate": "-20251231"})
    ] == [other.StudyInstanceUID]
    fuzzy = dicomweb.search_for_studies(search_filters={"PatientName": "王小东"}, fuzzymatching=True)
    assert [s["00100010"]["Value"][0]["Alphabetic"] for s in fuzzy] == ["Wang^XiaoDong"]
    assert len(dicomweb.search_for_studies(limit=1)) == 1
    series = dicomweb.search_for_series(study_instance_uid=wang[0].StudyInstanceUID)
    assert [s["0020000E"]["Value"][0] for s in series] == [wang[0].SeriesInstanceUID]
    assert len(dicomweb.search_for_series(search_filters={"Modality": "CT"})) == 2
    instances = dicomweb.search_for_instances(
        study_instance_uid=wang[0].StudyInstanceUID, series_instance_uid=wang[0].SeriesInstanceUID
    )
    assert [i["00080018"]["Value"][0] for i in instances] == [d.SOPInstanceUID for d in wang]
    assert len(dicomweb.search_for_instances(search_filters={"PatientID": "MRN2"})) == 1
    assert dicomweb.search_for_studies(search_filters={"PatientID": "NOBODY"}) == []


def test_metadata_frames_and_instance_retrieval(dicomweb, two_studies):
    wang, _, pixels = two_studies
    uids = dict(
        study_instance_uid=wang[1].StudyInstanceUID,
        series_instance_uid=wang[1].SeriesInstanceUID,
        sop_instance_uid=wang[1].SOPInstanceUID,
    )
    meta = dicomweb.retrieve_instance_metadata(**uids)
    assert meta["00100010"]["Value"][0]["Ideographic"] == "王^小东"
    assert meta["7FE00010"]["BulkDataURI"].endswith(f"/instances/{wang[1].SOPInstanceUID}/bulkdata/7FE00010")
    study_meta = dicomweb.retrieve_study_metadata(wang[0].StudyInstanceUID)
    assert {m["00080018"]["Value"][0] for m in study_meta} == {d.SOPInstanceUID for d in wang}
    [frame] = dicomweb.retrieve_instance_frames(**uids, frame_numbers=[1])
    assert frame == pixels[1].tobytes()
    [bulk] = dicomweb.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
    assert bulk == pixels[1].tobytes()
    ds = dicomweb.retrieve_instance(**uids)
    assert ds.SOPInstanceUID == wang[1].SOPInstanceUID
    assert np.array_equal(ds.pixel_array, pixels[1])
