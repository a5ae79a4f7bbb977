"""Faults at the node, driven by a real pynetdicom SCU: never 0x0000 unless durable and recorded."""

from __future__ import annotations

import os
import subprocess

import pytest
from django.db import connection
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from imaging import storage
from imaging.models import ReceivedObject
from tests.imaging.dicom_data import ct_dataset

pytestmark = [pytest.mark.dicom]


def _associate(node, ae_title="CT01"):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    assert assoc.is_established
    return assoc


def _ct(**kw):
    ds = ct_dataset(**kw)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _files_under(root):
    return [p for p in root.rglob("*") if p.is_file()]


def _terminate_other_backends():
    """Break every connection to the test database except this thread's (a restart, as seen by clients)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.postgres
def test_database_down_during_c_store_is_a7xx_then_retry_succeeds(dicom_node, register_station, settings):
    if connection.vendor != "postgresql":
        pytest.skip("breaks PostgreSQL backends (pg_terminate_backend)")
    register_station("CT01", modality="CT")
    assoc = _associate(dicom_node)
    try:
        ds = _ct()
        # Warm up: the association thread now holds a database connection (it keeps it
        # across C-STOREs), so the outage must break that connection, not only new ones.
        assert assoc.send_c_store(_ct()).Status == 0x0000
        port = connection.settings_dict["PORT"]
        # Every thread's connection is built from this dict: a reconnect fails too.
        connection.settings_dict["PORT"] = "1"
        _terminate_other_backends()
        try:
            status = assoc.send_c_store(ds).Status
        finally:
            connection.settings_dict["PORT"] = port
        assert status & 0xFF00 == 0xA700
        assert not ReceivedObject.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
        assert len(_files_under(settings.RIS_STORAGE_ROOT)) == 1  # the warm-up object only, nothing in tmp/
        # The modality retries once the database is back: success, durable, verified.
        assert assoc.send_c_store(ds).Status == 0x0000
    finally:
        assoc.release()
    obj = ReceivedObject.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert ReceivedObject.objects.count() == 2
    assert storage.sha256_of(obj.relpath) == obj.sha256


@pytest.fixture
def tiny_storage_root(tmp_path, settings):
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    settings.RIS_STORAGE_ROOT = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_storage_full_is_a700_and_leaves_no_partial_file(dicom_node, register_station, tiny_storage_root):
    register_station("CT01", modality="CT")
    assoc = _associate(dicom_node)
    try:
        small = _ct(rows=64, columns=64)  # 8 KiB: fits
        assert assoc.send_c_store(small).Status == 0x0000
        big = _ct(rows=1024, columns=1024)  # 2 MiB: cannot fit in 1 MiB
        assert assoc.send_c_store(big).Status == 0xA700
    finally:
        assoc.release()
    files = _files_under(tiny_storage_root)
    assert len(files) == 1  # the small object only: no partial file, nothing in tmp/
    obj = ReceivedObject.objects.get()
    assert obj.sop_instance_uid == small.SOPInstanceUID
    assert storage.sha256_of(obj.relpath) == obj.sha256
