"""Compressed transfer syntaxes: accepted as received (no transcoding), previewed or placeholdered."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless
from pynetdicom import AE

from imaging import previews, services, storage
from imaging.models import Instance, ReceivedObject
from tests.imaging.dicom_data import ct_dataset


def _rle_ct():
    px = np.full((16, 16), 1064, dtype=np.uint16)
    ds = ct_dataset(rows=16, columns=16, pixels=px, window=(40, 400))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return ds


@pytest.mark.dicom
def test_rle_is_stored_as_received_through_the_node(dicom_node, register_station):
    register_station("CT01", modality="CT")
    ds = _rle_ct()
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ds.SOPClassUID, RLELossless)
    assoc = ae.associate(dicom_node.host, dicom_node.port, ae_title=dicom_node.ae_title)
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    obj = ReceivedObject.objects.get()
    assert obj.transfer_syntax_uid == RLELossless
    stored = pydicom.dcmread(storage.path_for(obj.relpath))
    assert stored.file_meta.TransferSyntaxUID == RLELossless
    assert stored.PixelData == ds.PixelData  # the encapsulated fragments, byte for byte


@pytest.mark.django_db
def test_rle_preview_decodes_and_missing_decoder_gives_placeholder(receive):
    rle = _rle_ct()
    j2k = ct_dataset(rows=16, columns=16)
    j2k.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # not decodable here
    j2k["PixelData"].VR = "OB"
    receive(rle, transfer_syntax=RLELossless)
    receive(j2k, transfer_syntax=JPEG2000Lossless)
    for ds in (rle, j2k):
        services.study_ingest(study_instance_uid=ds.StudyInstanceUID)
    rle_img, rle_placeholder = previews.render_instance(
        Instance.objects.get(sop_instance_uid=rle.SOPInstanceUID)
    )
    assert not rle_placeholder
    assert np.asarray(rle_img)[8, 8] == round(((40 - 39.5) / 399 + 0.5) * 255)  # HU 40 at the centre
    _img, j2k_placeholder = previews.render_instance(
        Instance.objects.get(sop_instance_uid=j2k.SOPInstanceUID)
    )
    assert j2k_placeholder
