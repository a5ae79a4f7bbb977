"""Health, metrics and JSON logs (issue 9 item 25)."""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.request

import pytest
from django.urls import reverse
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from ris import dicom_metrics
from ris.logjson import JSONFormatter
from tests.ops.test_config_support import run_settings

pytestmark = pytest.mark.django_db

EXTERNAL = {"REMOTE_ADDR": "203.0.113.50"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_liveness_needs_nothing(client):
    resp = client.get("/health/live", **EXTERNAL)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert resp["Content-Type"] == "application/json"


def test_readiness_reports_each_dependency(client, settings, dicom_node):
    settings.RIS_DICOM_PORT, settings.RIS_DICOM_BIND_ADDRESS = dicom_node.port, "127.0.0.1"
    settings.CELERY_BROKER_URL = os.environ.get("RIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    settings.RIS_HEALTH_MIN_FREE_MB = 1
    with socket.create_server(("127.0.0.1", 0)) as hl7_listener:  # stands in for runhl7's port
        settings.RIS_HL7_BIND_ADDRESS, settings.RIS_HL7_PORT = "127.0.0.1", hl7_listener.getsockname()[1]
        resp = client.get("/health/ready")
    body = resp.json()
    assert resp.status_code == 200, body
    checks = body["checks"]
    assert {k: v["status"] for k, v in checks.items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
        "dicom": "ok",
        "hl7": "ok",
    }
    assert checks["storage"]["free_bytes"] > 0


def test_readiness_fails_with_503_and_names_the_check(client, settings):
    settings.RIS_DICOM_PORT, settings.RIS_DICOM_BIND_ADDRESS = free_port(), "127.0.0.1"  # nobody listens
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.RIS_HEALTH_MIN_FREE_MB = 10**9  # a petabyte: never there
    resp = client.get("/health/ready")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["dicom"] == {
        "status": "fail",
        "error": "ConnectionRefusedError",
        "ms": checks["dicom"]["ms"],
    }
    assert checks["broker"]["status"] == "fail"
    assert checks["storage"]["status"] == "fail" and checks["storage"]["error"] == "LowSpace"
    assert "redis://" not in resp.content.decode()  # no DSNs, no messages
    settings.RIS_HEALTH_SKIP = ["dicom", "broker", "storage", "hl7"]
    assert client.get("/health/ready").status_code == 200


def test_hl7_check_lights_up_when_configured(settings, monkeypatch):
    from ris import health

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        settings.RIS_HL7_PORT = listener.getsockname()[1]
        monkeypatch.setattr("django.core.management.get_commands", lambda: {"runhl7": "hl7"})
        assert health.run_checks(["hl7"])[1]["hl7"]["status"] == "ok"
    finally:
        listener.close()
    assert health.run_checks(["hl7"])[1]["hl7"]["status"] == "fail"


def test_readiness_and_metrics_are_internal_only(client, settings):
    settings.RIS_HEALTH_SKIP = ["dicom", "hl7"]
    assert client.get("/health/ready", **EXTERNAL).status_code == 404
    assert client.get("/metrics", **EXTERNAL).status_code == 404
    settings.RIS_HEALTH_TOKEN = "s3cret-token-for-monitoring"
    auth = {"HTTP_AUTHORIZATION": "Bearer s3cret-token-for-monitoring", **EXTERNAL}
    assert client.get("/health/ready", **auth).status_code == 200
    assert client.get("/metrics", **auth).status_code == 200
    wrong = {"HTTP_AUTHORIZATION": "Bearer nope", **EXTERNAL}
    assert client.get("/metrics", **wrong).status_code == 404
    # Behind nginx with RIS_TRUST_X_FORWARDED_FOR the real client decides, not 127.0.0.1.
    settings.RIS_TRUST_X_FORWARDED_FOR = True
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 404


def test_metrics_expose_django_and_ris_figures(client, settings):
    from django.utils import timezone

    from imaging.models import ReceivedObject

    for i, state in enumerate(["received", "received", "dead", "indexed"]):
        ReceivedObject.objects.create(
            sop_instance_uid=f"1.2.3.{i}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            study_instance_uid="1.2.3",
            relpath=f"x{i}",
            sha256="0" * 64,
            size=1,
            state=state,
            received_at=timezone.now(),
        )
    client.get(reverse("login"))
    text = client.get("/metrics").content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "ris_ingest_queue_depth 2.0" in text
    assert "ris_ingest_dead_objects 1.0" in text
    assert 'ris_outbox_depth{state="pending"} 0.0' in text
    assert "# TYPE ris_report_tat_seconds gauge" in text


@pytest.mark.dicom
def test_dicom_node_counts_associations_and_requests(dicom_node, register_station, settings):
    from prometheus_client import REGISTRY

    register_station("METRICSCT", host="127.0.0.1")

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    finds, released = (
        value("ris_dicom_requests_total", service="C-FIND MWL", outcome="success"),
        value("ris_dicom_associations_total", outcome="released"),
    )
    ae = AE(ae_title="METRICSCT")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", dicom_node.port, ae_title=dicom_node.ae_title)
    assert assoc.is_established
    query = Dataset()
    query.PatientName = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    ae.shutdown()
    assert value("ris_dicom_requests_total", service="C-FIND MWL", outcome="success") == finds + 1
    assert value("ris_dicom_request_seconds_count", service="C-FIND MWL") >= 1

    import time

    deadline = time.monotonic() + 30
    while value("ris_dicom_associations_total", outcome="released") < released + 1:
        assert time.monotonic() < deadline, "release not counted"
        time.sleep(0.05)
    # The node process serves them on its own port when asked to.
    port = dicom_metrics.start_exporter(free_port())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert 'ris_dicom_requests_total{outcome="success",service="C-FIND MWL"}' in text
        assert "ris_dicom_associations_active" in text
    finally:
        dicom_metrics.stop_exporters()


def test_json_log_lines(tmp_path):
    record = logging.LogRecord("ris.test", logging.WARNING, __file__, 1, "stored %s objects", (3,), None)
    record.ae_title = "CT01"
    record.patient_name = "Wang^XiaoDong"  # not a whitelisted field: never copied
    line = json.loads(JSONFormatter().format(record))
    assert line["msg"] == "stored 3 objects" and line["level"] == "WARNING" and line["logger"] == "ris.test"
    assert line["ae_title"] == "CT01" and "patient_name" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JSONFormatter().format(record))["exc"]
    rc, out = run_settings(
        tmp_path, RIS_LOG_FORMAT="json", extra="import logging; logging.getLogger('x').warning('hi')"
    )
    assert rc == 0, out
    assert any(json.loads(ln).get("msg") == "hi" for ln in out.splitlines() if ln.startswith("{")), out
    rc, out = run_settings(tmp_path, RIS_LOG_FORMAT="xml")
    assert rc != 0 and "RIS_LOG_FORMAT must be plain or json" in out
