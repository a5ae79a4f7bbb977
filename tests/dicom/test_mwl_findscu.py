"""The node in-process, queried by real clients: DCMTK findscu/echoscu and a pynetdicom SCU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from audit.models import AuditEvent
from tests.dicom_support import dcmtk

from .conftest import at_today, schedule
from .test_mwl_handler import J1_UTF8, J3_GB18030

pytestmark = [pytest.mark.dicom, pytest.mark.postgres]


def findscu(node, calling, keys, out: Path, *, port=None, extra=()):
    out.mkdir(parents=True, exist_ok=True)
    args: list = [
        "-W",
        "-to",
        "10",
        "-ta",
        "10",
        "-aet",
        calling,
        "-aec",
        node.ae_title,
        "-X",
        "-od",
        str(out),
        *extra,
    ]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, node.host, str(port or node.port))
    return result, [dcmread(f) for f in sorted(out.glob("rsp*.dcm"))]


def raw_name(ds) -> bytes:
    return ds.get_item(0x00100010).value


def test_chinese_name_queries_in_each_charset_profile(dicom_node, mwl_data, tmp_path):
    for station in mwl_data["stations"].values():
        station.worklist_scope = "all"
        station.save()
    keys_utf8 = [
        "SpecificCharacterSet=ISO_IR 192",
        "PatientID",
        "ScheduledProcedureStepSequence[0].Modality=CT",
    ]

    # UTF-8 station: WANG*, wang* and 王* all find 王小东; the name is PS3.5 J.1's form.
    for n, pattern in enumerate(["WANG*", "wang*", "王*"]):
        result, rsp = findscu(
            dicom_node, "CT_UTF8", [*keys_utf8, f"PatientName={pattern}"], tmp_path / f"u{n}"
        )
        assert result.returncode == 0, result.stderr.decode()
        assert {r.PatientID for r in rsp} == {"P1001"}, pattern
        assert len(rsp) == 2
        assert rsp[0].SpecificCharacterSet == "ISO_IR 192"
        assert raw_name(rsp[0]).rstrip(b" ") == "Wang^XiaoDong=王^小东=".encode()

    # GB18030 station, query itself in GB18030 bytes: the response bytes are PS3.5 J.3's.
    gb_args = [b"SpecificCharacterSet=GB18030", b"PatientID", b"PatientName=" + "王*".encode("gb18030")]
    result, rsp = findscu(dicom_node, "CT_GB", gb_args, tmp_path / "gb")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert len(rsp) == 2
    assert rsp[0].SpecificCharacterSet == "GB18030"
    assert raw_name(rsp[0]) == J3_GB18030

    # Latin-1 station: alphabetic group only.
    result, rsp = findscu(dicom_node, "CT_LATIN", [*keys_utf8, "PatientName=王*"], tmp_path / "l1")
    assert rsp[0].SpecificCharacterSet == "ISO_IR 100"
    assert raw_name(rsp[0]) == b"Wang^XiaoDong "

    # ASCII station: pinyin only, no Specific Character Set.
    result, rsp = findscu(dicom_node, "CT_ASCII", [*keys_utf8, "PatientName=wang*"], tmp_path / "a")
    assert "SpecificCharacterSet" not in rsp[0]
    assert raw_name(rsp[0]) == b"Wang^XiaoDong "

    # One audit event per query, written when the association ends.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and AuditEvent.objects.filter(action="worklist.mwl_query").count() < 6:
        time.sleep(0.05)
    events = AuditEvent.objects.filter(action="worklist.mwl_query")
    assert events.count() == 6
    assert {e.source_ae for e in events} == {"CT_UTF8", "CT_GB", "CT_LATIN", "CT_ASCII"}
    assert all(e.detail["matches"] == 2 for e in events)


def test_utf8_bytes_match_annex_j1(dicom_node, mwl_data, wang, tmp_path):
    wang.ideographic_given = "小東"
    wang.save()
    result, rsp = findscu(dicom_node, "CT_UTF8", ["PatientName", "PatientID=P1001"], tmp_path)
    assert result.returncode == 0
    assert raw_name(rsp[0]) == J1_UTF8 + b" "


def test_c_cancel_mid_query(dicom_node, mwl_data, wang, monkeypatch):
    """The SCU cancels after the first response; the node stops with 0xFE00."""
    from worklist import mwl_response

    station = mwl_data["stations"]["CT_UTF8"]
    for k in range(300):
        schedule(
            patient=wang,
            station=station,
            start=at_today(0) + __import__("datetime").timedelta(days=3, minutes=k),
        )
    original = mwl_response.ResponseEncoder.encode

    def slow_encode(self, row):  # a slow modality link: ~2 ms per match
        time.sleep(0.002)
        return original(self, row)

    monkeypatch.setattr(mwl_response.ResponseEncoder, "encode", slow_encode)
    ae = AE(ae_title="CT_UTF8")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate(dicom_node.host, dicom_node.port, ae_title=dicom_node.ae_title)
    assert assoc.is_established
    ds = Dataset()
    ds.PatientID = ""
    responses = assoc.send_c_find(ds, ModalityWorklistInformationFind, msg_id=7)
    statuses = []
    try:
        for status, _identifier in responses:
            statuses.append(status.Status)
            if len(statuses) == 1:
                cx = assoc.accepted_contexts[0].context_id
                assoc.send_c_cancel(7, cx)
    finally:
        assoc.release()
    assert statuses[0] == 0xFF00
    assert statuses[-1] == 0xFE00
    assert 1 <= statuses.count(0xFF00) < 302


# ---- TLS ------------------------------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        f"{name}-ca.key",
        "-out",
        f"{name}-ca.pem",
        cwd=folder,
    )


def _make_cert(folder: Path, ca: str, name: str, cn: str) -> None:
    ext = folder / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={cn}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        cwd=folder,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}-ca.pem",
        "-CAkey",
        f"{ca}-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.name,
        "-out",
        f"{name}.pem",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    _make_ca(folder, "site")
    _make_ca(folder, "rogue")
    _make_cert(folder, "site", "server", "ris.example")
    _make_cert(folder, "site", "modality", "CT1")
    _make_cert(folder, "rogue", "intruder", "CT1")
    return folder


def test_tls_requires_a_trusted_client_certificate(dicom_node_factory, register_station, pki):
    from ris.dicom import build_ssl_context

    register_station("CT1")
    context = build_ssl_context(
        cert=str(pki / "server.pem"), key=str(pki / "server.key"), ca=str(pki / "site-ca.pem")
    )
    node = dicom_node_factory(ssl_context=context, plain=False, acse_timeout=2)
    common = ["-to", "5", "-ta", "5", "-aet", "CT1", "-aec", node.ae_title, "+cf", str(pki / "site-ca.pem")]

    ok = dcmtk(
        "echoscu",
        *common,
        "+tls",
        str(pki / "modality.key"),
        str(pki / "modality.pem"),
        node.host,
        str(node.tls_port),
    )
    assert ok.returncode == 0, ok.stderr.decode()

    anonymous = dcmtk("echoscu", *common, "+tla", node.host, str(node.tls_port))
    assert anonymous.returncode != 0

    untrusted = dcmtk(
        "echoscu",
        *common,
        "+tls",
        str(pki / "intruder.key"),
        str(pki / "intruder.pem"),
        node.host,
        str(node.tls_port),
    )
    assert untrusted.returncode != 0

    plain = dcmtk(
        "echoscu", "-to", "5", "-ta", "5", "-aet", "CT1", "-aec", node.ae_title, node.host, str(node.tls_port)
    )
    assert plain.returncode != 0

    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and AuditEvent.objects.filter(action="dicom.association_rejected").count() < 3
    ):
        time.sleep(0.05)
    reasons = [e.detail["reason"] for e in AuditEvent.objects.filter(action="dicom.association_rejected")]
    assert reasons.count("tls_handshake_failed") >= 3
    assert context.minimum_version.name == "TLSv1_2"


# ---- the management command -------------------------------------------------------------


def test_rundicom_starts_logs_and_stops_on_sigterm(transactional_db, register_station, settings):
    from django.db import connection

    register_station("CT1")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "RIS_DICOM_AE_TITLE": "RISTEST",
        "RIS_LOG_LEVEL": "WARNING",
    }
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "rundicom",
            "--port",
            str(port),
            "--no-db-pool",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )
    try:
        line = proc.stdout.readline().decode()
        assert "RISTEST" in line and f"127.0.0.1:{port}" in line, line
        echo = dcmtk("echoscu", "-to", "5", "-aet", "CT1", "-aec", "RISTEST", "127.0.0.1", str(port))
        assert echo.returncode == 0, echo.stderr.decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
