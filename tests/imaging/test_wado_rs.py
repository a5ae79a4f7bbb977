"""WADO-RS metadata, frames, bulkdata and thumbnails (PS3.18 §10.4), with the Django test client."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from audit.models import AuditEvent
from imaging import services
from tests.imaging.dicom_data import ct_dataset

pytestmark = pytest.mark.django_db

OCTETS = 'multipart/related; type="application/octet-stream"'


def parts_of(response) -> list[tuple[str, bytes]]:
    assert response["Content-Type"].startswith("multipart/related"), response.content[:300]
    boundary = re.search(r"boundary=([\w-]+)", response["Content-Type"]).group(1).encode()
    out = []
    for chunk in response.content.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, body = chunk.split(b"\r\n\r\n", 1)
        ctype = re.search(rb"Content-Type: ([^\r\n]+)", head).group(1).decode()
        out.append((ctype, body[:-2]))
    return out


@pytest.fixture
def multiframe(receive):
    """One CT instance with 3 frames of 4x4 16-bit pixels (frame k holds value 100*k)."""
    pixels = np.stack([np.full((4, 4), 100 * (k + 1), dtype=np.uint16) for k in range(3)])
    ds = ct_dataset(rows=4, columns=4, pixels=pixels[0])
    ds.NumberOfFrames = 3
    ds.PixelData = pixels.tobytes()
    receive(ds)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    return ds, pixels


def _base(ds):
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


def test_metadata_at_each_level_replaces_pixel_data_by_a_bulkdata_uri(api_for, receive):
    study_uid = generate_uid()
    a = ct_dataset(study_uid=study_uid, patient_name="Wang^XiaoDong=王^小东", instance_number=1)
    b = ct_dataset(study_uid=study_uid, instance_number=2)
    receive(a, b)
    services.study_ingest(study_instance_uid=study_uid)
    api = api_for("radiologist")
    r = api.get(f"/dicomweb/studies/{study_uid}/metadata", HTTP_ACCEPT="application/dicom+json")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/dicom+json")
    items = r.json()
    assert {i["00080018"]["Value"][0] for i in items} == {a.SOPInstanceUID, b.SOPInstanceUID}
    item = next(i for i in items if i["00080018"]["Value"][0] == a.SOPInstanceUID)
    assert item["00100010"]["Value"] == [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}]
    assert item["00280010"] == {"vr": "US", "Value": [16]}
    assert item["7FE00010"] == {
        "vr": "OW",
        "BulkDataURI": "http://testserver" + _base(a) + "/bulkdata/7FE00010",
    }
    series = api.get(f"/dicomweb/studies/{study_uid}/series/{b.SeriesInstanceUID}/metadata")
    assert [i["00080018"]["Value"][0] for i in series.json()] == [b.SOPInstanceUID]
    inst = api.get(_base(a) + "/metadata")
    assert [i["00080018"]["Value"][0] for i in inst.json()] == [a.SOPInstanceUID]
    assert AuditEvent.objects.filter(action="imaging.wado_rs_metadata").count() == 3


def test_metadata_errors(api_for, multiframe):
    ds, _ = multiframe
    api = api_for("radiologist")
    assert api.get(f"/dicomweb/studies/{generate_uid()}/metadata").status_code == 404
    r = api.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", HTTP_ACCEPT="application/dicom+xml")
    assert r.status_code == 406 and r["Content-Type"] == "application/problem+json"
    r = api.get("/dicomweb/studies/1.2.x/metadata")
    assert r.status_code == 400 and r.json()["parameter"] == "StudyInstanceUID"
    assert api_for("front_desk").get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata").status_code == 403


def test_frames_uncompressed_in_the_order_asked(api_for, multiframe):
    ds, pixels = multiframe
    api = api_for("radiologist")
    r = api.get(_base(ds) + "/frames/3,1", HTTP_ACCEPT=OCTETS)
    assert r.status_code == 200
    parts = parts_of(r)
    assert [p[1] for p in parts] == [pixels[2].tobytes(), pixels[0].tobytes()]
    assert parts[0][0].startswith("application/octet-stream")
    assert AuditEvent.objects.filter(action="imaging.wado_rs_frames").count() == 1
    # Without an Accept header (or */*) uncompressed frames come as octet-stream too.
    assert parts_of(api.get(_base(ds) + "/frames/2"))[0][1] == pixels[1].tobytes()


def test_frame_errors(api_for, multiframe):
    ds, _ = multiframe
    api = api_for("radiologist")
    for frames, status in (("4", 404), ("1,9", 404), ("0", 400), ("x", 400), ("1,,a", 400)):
        r = api.get(_base(ds) + f"/frames/{frames}", HTTP_ACCEPT=OCTETS)
        assert r.status_code == status, frames
        assert r["Content-Type"] == "application/problem+json"
    # An uncompressed object cannot be sent as JPEG: 406.
    r = api.get(_base(ds) + "/frames/1", HTTP_ACCEPT='multipart/related; type="image/jpeg"')
    assert r.status_code == 406
    missing = _base(ds).replace(ds.SOPInstanceUID, generate_uid())
    assert api.get(missing + "/frames/1", HTTP_ACCEPT=OCTETS).status_code == 404
    assert api_for("front_desk").get(_base(ds) + "/frames/1").status_code == 403


def test_frames_of_a_compressed_object_as_stored_or_decoded(api_for, receive):
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 7) % 4000
    ds = ct_dataset(rows=8, columns=8, pixels=pixels)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.compress(RLELossless, encoding_plugin="pydicom")
    receive(ds, transfer_syntax=RLELossless)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    api = api_for("radiologist")
    stored = next(generate_frames(ds.PixelData, number_of_frames=1))
    r = api.get(
        _base(ds) + "/frames/1",
        HTTP_ACCEPT=f'multipart/related; type="image/dicom-rle"; transfer-syntax={RLELossless}',
    )
    [(ctype, body)] = parts_of(r)
    assert ctype.startswith("image/dicom-rle") and body == stored
    # Asking for octet-stream decodes it (RLE has a decoder).
    [(ctype, body)] = parts_of(api.get(_base(ds) + "/frames/1", HTTP_ACCEPT=OCTETS))
    assert ctype.startswith("application/octet-stream")
    assert np.array_equal(np.frombuffer(body, dtype="<u2").reshape(8, 8), pixels)


def test_frames_of_an_undecodable_object_need_its_own_media_type(api_for, receive):
    ds = ct_dataset(rows=4, columns=4)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # not decodable here
    ds["PixelData"].VR = "OB"
    receive(ds, transfer_syntax=JPEG2000Lossless)
    services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    api = api_for("radiologist")
    r = api.get(_base(ds) + "/frames/1", HTTP_ACCEPT=OCTETS)
    assert r.status_code == 406 and r["Content-Type"] == "application/problem+json"
    r = api.get(_base(ds) + "/frames/1", HTTP_ACCEPT='multipart/related; type="image/jp2"')
    [(ctype, body)] = parts_of(r)
    assert ctype.startswith("image/jp2") and body.startswith(b"\xff\x4f\xff\x51")


def test_bulkdata_of_pixel_data(api_for, multiframe):
    ds, pixels = multiframe
    api = api_for("radiologist")
    r = api.get(_base(ds) + "/bulkdata/7FE00010", HTTP_ACCEPT=OCTETS)
    assert [p[1] for p in parts_of(r)] == [pixels[k].tobytes() for k in range(3)]
    assert api.get(_base(ds) + "/bulkdata/7FE0001", HTTP_ACCEPT=OCTETS).status_code == 400
    assert api.get(_base(ds) + "/bulkdata/00100010", HTTP_ACCEPT=OCTETS).status_code == 404


def test_thumbnails_at_each_level(api_for, multiframe):
    ds, _ = multiframe
    api = api_for("radiologist")
    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    for url in (
        f"{study}/thumbnail",
        f"{study}/series/{ds.SeriesInstanceUID}/thumbnail",
        _base(ds) + "/thumbnail",
    ):
        r = api.get(url, HTTP_ACCEPT="image/jpeg")
        assert r.status_code == 200 and r["Content-Type"] == "image/jpeg", url
        assert Image.open(io.BytesIO(b"".join(r.streaming_content))).format == "JPEG"
    assert api.get(f"{study}/thumbnail", HTTP_ACCEPT="image/png").status_code == 406
    assert api.get(f"/dicomweb/studies/{generate_uid()}/thumbnail").status_code == 404
    assert api_for("front_desk").get(f"{study}/thumbnail").status_code == 403
