"""The durable receive path through the C-STORE handler, with fake events."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from pydicom import config

from imaging import dicom, storage
from imaging.models import DuplicateConflict, ReceivedObject
from tests.imaging.dicom_data import ct_dataset, part10_bytes, write_part10
from tests.imaging.fakes import FakeAssoc, FakeStoreEvent, status_of

pytestmark = pytest.mark.django_db


def _store(tmp_path, ds, *, name="in.dcm", command_uid=None, assoc=None, data: bytes | None = None):
    path = tmp_path / name
    if data is None:
        write_part10(path, ds)
    else:
        path.write_bytes(data)
    event = FakeStoreEvent(
        path,
        sop_class=ds.SOPClassUID,
        sop_instance=command_uid or ds.SOPInstanceUID,
        assoc=assoc,
    )
    return status_of(dicom.handle_store(event))


@contextmanager
def _no_validation():
    """Let the test build invalid values (pydicom validates on assignment and write)."""
    old = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = old


def _stored_files(root):
    return (
        sorted(p for p in (root / "objects").rglob("*") if p.is_file()) if (root / "objects").exists() else []
    )


def test_store_writes_durable_file_then_row(tmp_path, settings):
    ds = ct_dataset(accession="A100")
    assert _store(tmp_path, ds) == 0x0000
    obj = ReceivedObject.objects.get()
    assert obj.sop_instance_uid == ds.SOPInstanceUID
    assert obj.study_instance_uid == ds.StudyInstanceUID
    assert (obj.state, obj.calling_ae, obj.source) == ("received", "CT01", "dimse")
    path = storage.path_for(obj.relpath)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == obj.sha256
    assert len(data) == obj.size
    # Stored bytes = our meta + the dataset exactly as received; the name is ours.
    assert data == part10_bytes(ds)
    assert ds.SOPInstanceUID not in str(path)
    assert path.is_relative_to(settings.RIS_STORAGE_ROOT / "objects")
    assert not any((settings.RIS_STORAGE_ROOT / "tmp").iterdir())


def test_same_bytes_resent_is_idempotent(tmp_path, settings):
    ds = ct_dataset()
    assert _store(tmp_path, ds) == 0
    assert _store(tmp_path, ds) == 0
    assert ReceivedObject.objects.count() == 1
    assert len(_stored_files(settings.RIS_STORAGE_ROOT)) == 1
    assert not DuplicateConflict.objects.exists()


def test_different_bytes_keep_first_and_record_conflict(tmp_path, settings):
    ds = ct_dataset(patient_name="First^Version")
    assert _store(tmp_path, ds) == 0
    first = ReceivedObject.objects.get()
    ds.PatientName = "Second^Version"
    assert _store(tmp_path, ds) == 0
    assert _store(tmp_path, ds) == 0  # the same second version again: one conflict only
    kept = ReceivedObject.objects.get()
    assert (kept.pk, kept.sha256) == (first.pk, first.sha256)
    conflict = DuplicateConflict.objects.get()
    assert conflict.original_id == first.pk and conflict.sha256 != first.sha256
    assert b"Second^Version" in storage.path_for(conflict.relpath).read_bytes()
    assert b"First^Version" in storage.path_for(kept.relpath).read_bytes()
    assert len(_stored_files(settings.RIS_STORAGE_ROOT)) == 2


@pytest.mark.parametrize(
    "bad_uid",
    [
        "../../../../etc/passwd",
        "1.2.3/../../x",
        "1." + "2" * 70,  # longer than 64
        "1.2.03",  # leading zero in a component
        "1.2.3\x00evil",
    ],
)
def test_invalid_sop_instance_uid_refused_without_trace(tmp_path, settings, bad_uid):
    ds = ct_dataset()
    del ds.SOPInstanceUID
    with _no_validation():
        ds.SOPInstanceUID = bad_uid
        assert _store(tmp_path, ds, command_uid=bad_uid) == 0xA900
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []


def test_invalid_study_uid_refused(tmp_path):
    ds = ct_dataset()
    del ds.StudyInstanceUID
    with _no_validation():
        ds.StudyInstanceUID = "../" * 10
        assert _store(tmp_path, ds) == 0xA900
    assert not ReceivedObject.objects.exists()


def test_command_dataset_uid_mismatch_refused(tmp_path, settings):
    ds = ct_dataset()
    assert _store(tmp_path, ds, command_uid="1.2.3.4.5") == 0xA900
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []


def test_sop_class_mismatch_refused(tmp_path):
    ds = ct_dataset()
    path = write_part10(tmp_path / "x.dcm", ds)
    event = FakeStoreEvent(path, sop_class="1.2.840.10008.5.1.4.1.1.4", sop_instance=ds.SOPInstanceUID)
    assert status_of(dicom.handle_store(event)) == 0xA900


def test_truncated_dataset_is_cannot_understand(tmp_path, settings):
    ds = ct_dataset(rows=32, columns=32)
    data = part10_bytes(ds)
    assert _store(tmp_path, ds, data=data[:-100]) == 0xC000
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []


def test_image_cut_at_an_element_boundary_is_refused(tmp_path):
    ds = ct_dataset()
    del ds.PixelData
    assert _store(tmp_path, ds) == 0xA900


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00" * 128 + b"DICM",
        b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f",
        b"not dicom" * 50,
    ],
)
def test_malformed_files_are_cannot_understand(tmp_path, garbage):
    ds = ct_dataset()
    assert _store(tmp_path, ds, data=garbage) == 0xC000
    assert not ReceivedObject.objects.exists()


def test_garbage_after_valid_meta_is_cannot_understand(tmp_path):
    ds = ct_dataset()
    data = part10_bytes(ds)
    meta_len = len(
        storage.file_meta_bytes(
            sop_class_uid=ds.SOPClassUID,
            sop_instance_uid=ds.SOPInstanceUID,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
        )
    )
    corrupt = data[:meta_len] + b"\x08\x00\x16\x00U\x01\x40\x00" + data[meta_len + 8 :]
    assert _store(tmp_path, ds, data=corrupt) == 0xC000


def test_object_over_the_size_limit_is_out_of_resources(tmp_path, settings):
    settings.RIS_STORAGE_MAX_OBJECT_BYTES = 1000
    ds = ct_dataset(rows=64, columns=64)
    assert _store(tmp_path, ds) == 0xA700
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []
    tmp = settings.RIS_STORAGE_ROOT / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


@pytest.mark.django_db(transaction=True)
def test_database_unavailable_is_a7xx_and_leaves_no_file(tmp_path, settings):
    ds = ct_dataset()
    path = write_part10(tmp_path / "x.dcm", ds)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there
    try:
        status = status_of(
            dicom.handle_store(FakeStoreEvent(path, sop_class=ds.SOPClassUID, sop_instance=ds.SOPInstanceUID))
        )
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert status & 0xFF00 == 0xA700 and status != 0
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []


def test_release_enqueues_once_per_study(tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("imaging.services._send_ingest", lambda uid: sent.append(uid))
    assoc = FakeAssoc()
    a, b = ct_dataset(), ct_dataset()
    b2 = ct_dataset(study_uid=b.StudyInstanceUID)
    for i, ds in enumerate([a, b, b2]):
        assert _store(tmp_path, ds, name=f"{i}.dcm", assoc=assoc) == 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dicom.handle_association_end(type("E", (), {"assoc": assoc})())
        assert sent == []  # only after commit
    assert len(callbacks) == 2
    assert sorted(sent) == sorted([a.StudyInstanceUID, b.StudyInstanceUID])
    dicom.handle_association_end(type("E", (), {"assoc": assoc})())  # abort after release: no repeat
    assert len(sent) == 2
    assert ReceivedObject.objects.filter(enqueued_at__isnull=False).count() == 3


def test_resend_repairs_a_row_whose_file_was_lost(tmp_path):
    # A crash after the commit but before the directory fsync can lose the name of a file
    # that was never acknowledged; the modality resends, and the resend must be stored.
    ds = ct_dataset()
    assert _store(tmp_path, ds) == 0
    obj = ReceivedObject.objects.get()
    storage.path_for(obj.relpath).unlink()
    assert _store(tmp_path, ds) == 0
    obj.refresh_from_db()
    assert storage.path_for(obj.relpath).read_bytes() == part10_bytes(ds)
    assert storage.sha256_of(obj.relpath) == obj.sha256


def test_storage_check_finds_orphans_missing_and_damaged(tmp_path, settings):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    a, b = ct_dataset(), ct_dataset()
    assert _store(tmp_path, a, name="a.dcm") == 0
    assert _store(tmp_path, b, name="b.dcm") == 0
    out = io.StringIO()
    call_command("imaging_storage_check", "--verify", stdout=out)
    assert "orphans 0" in out.getvalue() and "damaged 0" in out.getvalue()
    orphan = settings.RIS_STORAGE_ROOT / "objects" / "2020" / "01" / "01" / "x.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"never acknowledged")
    obj_a, obj_b = ReceivedObject.objects.order_by("id")
    storage.path_for(obj_a.relpath).unlink()
    with storage.path_for(obj_b.relpath).open("r+b") as fp:
        fp.seek(200)
        fp.write(b"\xff")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("imaging_storage_check", "--verify", stdout=out)
    text = out.getvalue()
    assert "orphans 1" in text and f"missing: {obj_a.relpath}" in text and f"damaged: {obj_b.relpath}" in text


# ---------------------------------------------------------------------------------------
# The node's real receive path: pynetdicom writes a storage.ReceiveFile inside the storage
# root (hash while written), the handler fsyncs and renames it instead of copying.


def _pynetdicom_write(ds, *, command_uid=None, chunk=16384):
    """Write ``ds`` into a ReceiveFile exactly as pynetdicom's chunked receive does."""
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.dsutils import create_file_meta

    from tests.imaging.dicom_data import dataset_bytes

    rf = storage.ReceiveFile(delete=False, mode="wb", suffix=".dcm")
    rf.write(b"\x00" * 128)
    rf.write(b"DICM")
    write_file_meta_info(
        rf,
        create_file_meta(
            sop_class_uid=ds.SOPClassUID,
            sop_instance_uid=command_uid or ds.SOPInstanceUID,
            transfer_syntax=ExplicitVRLittleEndian,
        ),
    )
    data = dataset_bytes(ds)
    for i in range(0, len(data), chunk):
        rf.write(data[i : i + chunk])
        rf.file.flush()
    return rf


def _store_received(ds, rf, *, command_uid=None):
    event = FakeStoreEvent(
        Path(rf.name), sop_class=ds.SOPClassUID, sop_instance=command_uid or ds.SOPInstanceUID
    )
    event.request._dataset_file = rf
    try:
        return status_of(dicom.handle_store(event))
    finally:  # what pynetdicom does after the handler returns
        rf.close()
        with contextlib.suppress(OSError):
            os.unlink(rf.name)


def test_received_file_is_renamed_into_place_not_copied(settings):
    ds = ct_dataset()
    rf = _pynetdicom_write(ds)
    assert Path(rf.name).parent == settings.RIS_STORAGE_ROOT / "tmp"  # same file system as objects/
    inode = os.stat(rf.name).st_ino
    assert _store_received(ds, rf) == 0x0000
    obj = ReceivedObject.objects.get()
    path = storage.path_for(obj.relpath)
    assert os.stat(path).st_ino == inode  # renamed, not copied
    data = path.read_bytes()
    # The same bytes (and sha256) the copy path and STOW-RS store for this object.
    assert data == part10_bytes(ds)
    assert obj.sha256 == hashlib.sha256(data).hexdigest() and obj.size == len(data)
    assert not any((settings.RIS_STORAGE_ROOT / "tmp").iterdir())


def test_received_file_resent_is_idempotent(settings):
    ds = ct_dataset()
    assert _store_received(ds, _pynetdicom_write(ds)) == 0
    assert _store_received(ds, _pynetdicom_write(ds, chunk=1000)) == 0
    assert ReceivedObject.objects.count() == 1
    assert len(_stored_files(settings.RIS_STORAGE_ROOT)) == 1
    assert not DuplicateConflict.objects.exists()


def test_received_file_write_error_is_a700_and_nothing_remains(settings, monkeypatch):
    ds = ct_dataset()
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 4:  # preamble, DICM, meta, first chunk fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", failing_write)
    rf = _pynetdicom_write(ds, chunk=1000)  # pynetdicom's DUL thread never sees the error
    monkeypatch.undo()
    assert rf.error is not None and calls["n"] == 5  # nothing written after the failure
    assert not Path(rf.name).exists()  # the partial file is gone at once (space is freed)
    assert _store_received(ds, rf) == 0xA700
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []
    assert not any((settings.RIS_STORAGE_ROOT / "tmp").iterdir())


def test_received_file_over_the_size_limit_is_a700(settings):
    settings.RIS_STORAGE_MAX_OBJECT_BYTES = 4000
    ds = ct_dataset(rows=64, columns=64)
    rf = _pynetdicom_write(ds, chunk=1000)
    assert rf.too_large and not Path(rf.name).exists()
    assert _store_received(ds, rf) == 0xA700
    assert not ReceivedObject.objects.exists()
    assert not any((settings.RIS_STORAGE_ROOT / "tmp").iterdir())


@pytest.mark.django_db(transaction=True)
def test_received_file_directory_fsync_failure_is_refused_and_undone(settings, monkeypatch):
    # The row is committed concurrently with the file's fsync/rename/directory fsync; if the
    # latter fails, the row is deleted again and the object refused (never 0x0000).
    def broken_fsync_dir(path):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(storage, "_fsync_dir", broken_fsync_dir)
    ds = ct_dataset()
    assert _store_received(ds, _pynetdicom_write(ds)) == 0xA702
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []


def test_received_file_with_command_uid_mismatch_refused_without_trace(settings):
    ds = ct_dataset()
    rf = _pynetdicom_write(ds, command_uid="1.2.3.4.5")
    assert _store_received(ds, rf, command_uid="1.2.3.4.5") == 0xA900
    assert not ReceivedObject.objects.exists()
    assert _stored_files(settings.RIS_STORAGE_ROOT) == []
    assert not any((settings.RIS_STORAGE_ROOT / "tmp").iterdir())


def test_resend_revives_a_row_given_up_because_its_file_was_lost(tmp_path):
    ds = ct_dataset()
    assert _store(tmp_path, ds) == 0
    obj = ReceivedObject.objects.get()
    storage.path_for(obj.relpath).unlink()
    ReceivedObject.objects.filter(pk=obj.pk).update(
        state="dead", attempts=5, last_error="stored file is missing"
    )
    assert _store_received(ds, _pynetdicom_write(ds)) == 0
    obj.refresh_from_db()
    assert (obj.state, obj.attempts, obj.last_error) == ("received", 0, "")
    assert storage.sha256_of(obj.relpath) == obj.sha256
