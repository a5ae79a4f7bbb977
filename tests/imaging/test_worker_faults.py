"""Real clients, a real Celery worker on Redis, and faults: nothing acknowledged is ever lost.

Every scenario ends with: every acknowledged object on disk, sha256-verified, indexed, and
the study linked exactly once.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from pydicom.uid import generate_uid

from imaging import storage
from imaging.models import ReceivedObject, Study, StudyLink
from scheduling.models import ProcedureEvent, ProcedureStatus
from tests.dicom_support import dcmtk
from tests.factories import PatientFactory, make_order
from tests.imaging.dicom_data import ct_dataset, write_part10

pytestmark = [pytest.mark.integration, pytest.mark.dicom, pytest.mark.postgres]


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _order():
    patient = PatientFactory(patient_id="MRN-W1", issuer="RIS")
    order = make_order(patient=patient)
    return order.procedures.select_related("order").get(), patient


def _files(tmp_path, proc, patient, n, *, rows=16):
    series = generate_uid()
    out = tmp_path / "send"
    out.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        ds = ct_dataset(
            study_uid=proc.study_instance_uid,
            series_uid=series,
            accession=proc.order.accession_number,
            patient_id=patient.patient_id,
            instance_number=i + 1,
            z=i * 1.0,
            rows=rows,
            columns=rows,
        )
        paths.append(write_part10(out / f"{i:04d}.dcm", ds))
    return paths


def _storescu(node, paths, ae="CT01"):
    return dcmtk("storescu", "-aet", ae, "-aec", node.ae_title, node.host, str(node.port), *map(str, paths))


def _assert_all_safe(proc, n):
    objects = list(ReceivedObject.objects.filter(study_instance_uid=proc.study_instance_uid))
    assert len(objects) == n
    for obj in objects:
        assert storage.sha256_of(obj.relpath) == obj.sha256
        assert obj.state == "indexed"
    study = Study.objects.get(study_instance_uid=proc.study_instance_uid)
    assert study.num_instances == n
    assert study.requested_procedure_id == proc.pk
    assert StudyLink.objects.filter(study=study).count() == 1
    assert ProcedureEvent.objects.filter(requested_procedure=proc, action="images_available").count() == 1
    proc.refresh_from_db()
    assert proc.status == ProcedureStatus.COMPLETED


def _linked(proc):
    return lambda: Study.objects.filter(
        study_instance_uid=proc.study_instance_uid, requested_procedure=proc
    ).exists()


def test_storescu_to_node_then_worker_links(tmp_path, dicom_node, register_station, celery_worker_process):
    register_station("CT01", modality="CT")
    proc, patient = _order()
    paths = _files(tmp_path, proc, patient, 5)
    result = _storescu(dicom_node, paths)
    assert result.returncode == 0, result.stderr.decode()
    wait_for(_linked(proc), what="the worker to link the study")
    wait_for(lambda: ReceivedObject.objects.filter(state="received").count() == 0)
    _assert_all_safe(proc, 5)
    # The same association again: duplicates are idempotent, nothing is linked twice.
    assert _storescu(dicom_node, paths).returncode == 0
    time.sleep(1.0)
    _assert_all_safe(proc, 5)


def test_worker_sigkilled_mid_task_loses_nothing(
    tmp_path, receive, settings, celery_worker_factory, kill_mid_task
):
    from imaging import services

    proc, patient = _order()
    datasets = [
        ct_dataset(
            study_uid=proc.study_instance_uid,
            accession=proc.order.accession_number,
            patient_id=patient.patient_id,
            instance_number=i,
        )
        for i in range(60)
    ]
    receive(*datasets)
    worker = celery_worker_factory(env={"RIS_INGEST_CHUNK_SIZE": "2"})
    services.studies_enqueue(study_uids=[proc.study_instance_uid])
    kill_mid_task(worker, lambda: ReceivedObject.objects.filter(state="indexed").exists())
    indexed = ReceivedObject.objects.filter(state="indexed").count()
    assert 0 < indexed < 60, "the worker was not killed mid-task"
    assert not Study.objects.filter(requested_procedure=proc).exists()
    # A new worker; Redis still holds the unacked message (visibility timeout), the sweeper wins.
    celery_worker_factory(env={"RIS_INGEST_CHUNK_SIZE": "25"})
    settings.RIS_INGEST_LEASE_SECONDS = 0
    services.sweep_received()
    wait_for(_linked(proc), what="the sweeper's re-run to link the study")
    wait_for(lambda: not ReceivedObject.objects.filter(state="received").exists())
    _assert_all_safe(proc, 60)
    assert max(ReceivedObject.objects.values_list("attempts", flat=True)) >= 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_server(port: int) -> subprocess.Popen:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    wait_for(lambda: _pings(client), timeout=10, what="redis-server")
    return proc


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def test_redis_lost_during_burst_and_restarted_empty(
    tmp_path, dicom_node, register_station, settings, celery_worker_factory
):
    from imaging import services

    register_station("CT01", modality="CT")
    proc, patient = _order()
    paths = _files(tmp_path, proc, patient, 40)
    port = _free_port()
    redis_proc = _redis_server(port)
    try:
        worker = celery_worker_factory(broker_url=f"redis://127.0.0.1:{port}/0")
        sender = subprocess.Popen(
            ["storescu", "-aet", "CT01", "-aec", dicom_node.ae_title, dicom_node.host, str(dicom_node.port)]
            + [str(p) for p in paths],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: ReceivedObject.objects.exists(), timeout=20, interval=0.002, what="first object")
        redis_proc.kill()  # the broker dies mid-burst (and keeps nothing: --save '')
        redis_proc.wait(timeout=10)
        _out, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err.decode()
        assert ReceivedObject.objects.count() == 40  # every C-STORE was answered only once durable
        time.sleep(1.0)
        # The release could not reach the broker: nothing was indexed while it was down.
        assert not ReceivedObject.objects.exclude(state="received").exists()
        redis_proc = _redis_server(port)  # back, empty
        settings.RIS_INGEST_LEASE_SECONDS = 0
        services.sweep_received()
        wait_for(_linked(proc), timeout=40, what="link after broker restart")
        wait_for(lambda: not ReceivedObject.objects.filter(state="received").exists())
        _assert_all_safe(proc, 40)
        worker.stop()
    finally:
        redis_proc.kill()
        redis_proc.wait(timeout=10)


def test_demo_study_command_links_through_storescu(tmp_path, dicom_node, register_station):
    """The `make run` story: a demo order, storescu from its station, the study links (eager)."""
    from django.core.management import call_command

    register_station("CT01", modality="CT")
    proc, _patient = _order()
    call_command(
        "imaging_demo_study", proc.order.accession_number, "--out", str(tmp_path / "demo"), "--instances", "4"
    )
    result = dcmtk(
        "storescu",
        "-aet",
        "CT01",
        "-aec",
        dicom_node.ae_title,
        dicom_node.host,
        str(dicom_node.port),
        "+sd",
        str(tmp_path / "demo"),
    )
    assert result.returncode == 0, result.stderr.decode()
    wait_for(_linked(proc), what="eager ingest on release to link the study")
    _assert_all_safe(proc, 4)
