"""Backup and restore (issue 9 item 26): a restore into a fresh database and storage root
passes imaging_storage_check."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from django.conf import settings
from django.db import connection

from imaging import services
from imaging.models import ReceivedObject, Study
from tests.imaging.dicom_data import ct_dataset, write_part10

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ROOT = settings.BASE_DIR


def run(cmd, env=None, check=True):
    out = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300
    )
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def psql(url, sql):
    return run(["psql", url, "-Atc", sql]).stdout.strip()


@pytest.fixture
def restored_db():
    """A database name that does not exist yet; dropped afterwards."""
    from tests.celery_support import _database_url

    source = _database_url()
    name = f"ris_restore_{uuid.uuid4().hex[:8]}"
    target = source.rsplit("/", 1)[0] + "/" + name
    yield source, target
    run(
        ["psql", source.rsplit("/", 1)[0] + "/postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}"'],
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_backup_then_restore_into_a_fresh_database_and_storage(tmp_path, restored_db):
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump/pg_restore")
    source, target = restored_db
    datasets = [ct_dataset(instance_number=i + 1) for i in range(3)]
    for i, ds in enumerate(datasets):
        path = write_part10(tmp_path / f"in{i}.dcm", ds)
        services.object_receive(
            path=path,
            calling_ae="CT01",
            command_sop_class_uid=ds.SOPClassUID,
            command_sop_instance_uid=ds.SOPInstanceUID,
        )
    services.study_ingest(study_instance_uid=datasets[0].StudyInstanceUID)
    assert ReceivedObject.objects.count() == 3
    storage = settings.RIS_STORAGE_ROOT
    (storage / "tmp").mkdir(exist_ok=True)
    (storage / "tmp" / "rx-in-progress.part").write_bytes(b"partial")  # not part of a backup

    backup = (
        run(
            ["bash", "scripts/backup.sh", "-o", str(tmp_path / "backups")],
            env={"DATABASE_URL": source, "RIS_STORAGE_ROOT": str(storage)},
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    names = sorted(os.listdir(backup))
    assert names == ["MANIFEST", "SHA256SUMS", "database.dump", "storage.tar"]
    with open(os.path.join(backup, "MANIFEST")) as f:
        manifest = dict(line.split("=", 1) for line in f.read().splitlines())
    assert manifest["format"] == "ris-backup-1" and int(manifest["storage_files"]) >= 3
    assert "@" not in manifest["database"]  # no credentials in the manifest

    new_storage = tmp_path / "restored-storage"
    out = run(
        ["bash", "scripts/restore.sh", "-b", backup, "-d", target, "-s", str(new_storage), "-c"],
        env={"PYTHON": os.path.join(os.path.dirname(os.sys.executable), "python")},
    )
    assert "restore: done" in out.stdout, out.stdout + out.stderr
    assert psql(target, "SELECT count(*) FROM imaging_receivedobject") == "3"
    assert psql(target, "SELECT count(*) FROM imaging_study") == str(Study.objects.count())
    assert not (new_storage / "tmp").exists()
    # The storage check passes against the restored pair on its own, too …
    check = run(
        [os.sys.executable, "manage.py", "imaging_storage_check", "--verify"],
        env={"DATABASE_URL": target, "RIS_STORAGE_ROOT": str(new_storage)},
    )
    assert "files 3, rows 3, orphans 0 (removed 0), missing 0, damaged 0" in check.stdout, check.stdout
    # … and the append-only triggers came back with the schema.
    triggers = psql(
        target,
        "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgname LIKE '%append_only'",
    )
    assert triggers.split(",") == [
        "audit_event_append_only",
        "reports_reportevent_append_only",
        "scheduling_procedureevent_append_only",
    ]


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_damaged_backup_or_a_non_empty_target(tmp_path, restored_db):
    if connection.vendor != "postgresql":
        pytest.skip("pg_dump/pg_restore")
    source, target = restored_db
    storage = settings.RIS_STORAGE_ROOT
    (storage / "x").write_bytes(b"object")
    backup = (
        run(["bash", "scripts/backup.sh", "-d", source, "-s", str(storage), "-o", str(tmp_path)])
        .stdout.strip()
        .splitlines()[-1]
    )
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep").write_text("mine")
    out = run(
        ["bash", "scripts/restore.sh", "-b", backup, "-d", target, "-s", str(occupied), "-c", "-n"],
        check=False,
    )
    assert out.returncode != 0 and "not empty" in out.stderr
    assert (occupied / "keep").read_text() == "mine"
    with open(os.path.join(backup, "storage.tar"), "r+b") as f:
        f.seek(600)
        f.write(b"X")
    out = run(
        ["bash", "scripts/restore.sh", "-b", backup, "-d", target, "-s", str(tmp_path / "new"), "-c"],
        check=False,
    )
    assert out.returncode == 1 and "checksum mismatch" in out.stderr
    assert not (tmp_path / "new").exists()
    name = target.rsplit("/", 1)[1]  # ris_restore_<hex>: generated above, no quoting needed
    query = "SELECT count(*) FROM pg_database WHERE datname = '%s'" % name  # noqa: S608, UP031
    exists = psql(source.rsplit("/", 1)[0] + "/postgres", query)
    assert exists == "0"  # nothing was created
