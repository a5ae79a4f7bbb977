"""The node in-process, driven by DCMTK echoscu and raw sockets: policy, guards, timeouts."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from audit.models import AuditEvent
from tests.dicom_support import dcmtk

pytestmark = [pytest.mark.dicom, pytest.mark.postgres]


def echo(node, calling="CT1", called=None, port=None):
    return dcmtk(
        "echoscu",
        "-to",
        "5",
        "-ta",
        "5",
        "-aet",
        calling,
        "-aec",
        called or node.ae_title,
        node.host,
        str(port or node.port),
    )


def test_echo_from_registered_station(dicom_node, register_station):
    register_station("CT1")
    result = echo(dicom_node)
    assert result.returncode == 0, result.stderr.decode()
    assert not AuditEvent.objects.filter(action="dicom.association_rejected").exists()


def test_unknown_calling_ae_is_rejected_and_audited(dicom_node, register_station):
    register_station("CT1")
    result = echo(dicom_node, calling="INTRUDER")
    assert result.returncode != 0
    assert b"Calling AE Title Not Recognized" in result.stderr or b"Rejected" in result.stderr
    event = AuditEvent.objects.get(action="dicom.association_rejected")
    assert event.source_ae == "INTRUDER"
    assert event.outcome == "denied"
    assert event.source_ip == "127.0.0.1"
    assert event.detail["reason"] == "calling_ae_not_recognized"
    assert (event.detail["result"], event.detail["source"], event.detail["diagnostic"]) == (1, 1, 3)


def test_inactive_station_is_rejected(dicom_node, register_station):
    register_station("CT1", active=False)
    assert echo(dicom_node).returncode != 0
    assert AuditEvent.objects.filter(action="dicom.association_rejected", source_ae="CT1").count() == 1


def test_wrong_called_ae_is_rejected(dicom_node, register_station):
    register_station("CT1")
    result = echo(dicom_node, called="NOTRIS")
    assert result.returncode != 0
    event = AuditEvent.objects.get(action="dicom.association_rejected")
    assert event.detail["reason"] == "called_ae_not_recognized"
    assert event.detail["called_ae"] == "NOTRIS"
    assert event.detail["diagnostic"] == 7


@pytest.mark.parametrize(
    ("binding", "accepted"),
    [("127.0.0.1", True), ("10.1.2.3", False), ("127.0.0.0/8", True), ("localhost", True)],
)
def test_host_binding(dicom_node, register_station, binding, accepted):
    register_station("CT1", host=binding)
    result = echo(dicom_node)
    assert (result.returncode == 0) is accepted
    rejected = AuditEvent.objects.filter(action="dicom.association_rejected")
    assert rejected.exists() is not accepted
    if not accepted:
        assert rejected.get().detail["reason"] == "host_not_allowed"


def test_reject_details_seen_by_pynetdicom_scu(dicom_node, register_station):
    ae = AE(ae_title="NOBODY")
    ae.add_requested_context(Verification)
    assoc = ae.associate(dicom_node.host, dicom_node.port, ae_title=dicom_node.ae_title)
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)


def test_max_associations(dicom_node_factory, register_station):
    register_station("CT1")
    node = dicom_node_factory(maximum_associations=1)
    ae = AE(ae_title="CT1")
    ae.add_requested_context(Verification)
    first = ae.associate(node.host, node.port, ae_title=node.ae_title)
    assert first.is_established
    try:
        second = ae.associate(node.host, node.port, ae_title=node.ae_title)
        assert second.is_rejected
        rj = second.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
    finally:
        first.release()
    event = AuditEvent.objects.get(action="dicom.association_rejected")
    assert event.detail["reason"] == "too_many_associations"


def _associate_rq(calling=b"CT1", called=b"RIS") -> bytes:
    """A minimal valid A-ASSOCIATE-RQ built with pynetdicom's encoder."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context
    from pynetdicom.transport import AddressInformation

    primitive = A_ASSOCIATE()
    primitive.calling_ae_title = calling.decode()
    primitive.called_ae_title = called.decode()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_presentation_address = AddressInformation("127.0.0.1", 1)
    primitive.called_presentation_address = AddressInformation("127.0.0.1", 2)
    cx = build_context(Verification)
    cx.context_id = 1
    primitive.presentation_context_definition_list = [cx]
    ml = MaximumLengthNotification()
    ml.maximum_length_received = 16384
    primitive.user_information = [ml]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _recv_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def test_oversized_pdu_is_aborted_without_buffering(dicom_node, register_station):
    register_station("CT1")
    with socket.create_connection((dicom_node.host, dicom_node.port), timeout=5) as sock:
        sock.sendall(_associate_rq(called=dicom_node.ae_title.encode()))
        header = sock.recv(6)
        assert header[0] == 0x02  # A-ASSOCIATE-AC
        length = struct.unpack(">L", header[2:6])[0]
        sock.recv(length, socket.MSG_WAITALL)
        # A P-DATA-TF declaring 1 GiB: the node must not try to read it.
        started = time.monotonic()
        sock.sendall(struct.pack(">BBL", 0x04, 0, 1 << 30) + b"\x00" * 64)
        reply = _recv_all(sock, timeout=5)
        assert time.monotonic() - started < 3
    assert reply[:1] == b"\x07", reply[:16]  # A-ABORT
    assert reply[8:10] == b"\x02\x06"  # source service-provider, invalid PDU parameter value
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and not AuditEvent.objects.filter(action="dicom.association_aborted").exists()
    ):
        time.sleep(0.05)
    event = AuditEvent.objects.get(action="dicom.association_aborted")
    assert event.detail["reason"] == "pdu_too_large"
    assert event.detail["declared_length"] == 1 << 30


def test_oversized_associate_request_is_aborted(dicom_node):
    with socket.create_connection((dicom_node.host, dicom_node.port), timeout=5) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0x7FFFFFFF) + b"\x00" * 64)
        started = time.monotonic()
        reply = _recv_all(sock, timeout=5)
        assert time.monotonic() - started < 3
    assert reply[:1] == b"\x07"


def test_garbage_bytes_do_not_harm_the_node(dicom_node, register_station):
    register_station("CT1")
    with socket.create_connection((dicom_node.host, dicom_node.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
        reply = _recv_all(sock, timeout=5)
    assert reply == b"" or reply[:1] == b"\x07"  # closed, or A-ABORT then closed
    assert echo(dicom_node).returncode == 0  # still serving


def test_silent_peer_is_closed_after_acse_timeout(dicom_node_factory, register_station):
    register_station("CT1")
    node = dicom_node_factory(acse_timeout=0.5)
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        started = time.monotonic()
        reply = _recv_all(sock, timeout=8)
        elapsed = time.monotonic() - started
    assert reply == b""
    assert 0.3 < elapsed < 4
    assert echo(node).returncode == 0


def test_tcp_nodelay_on_accepted_sockets(dicom_node, register_station):
    register_station("CT1")
    ae = AE(ae_title="CT1")
    ae.add_requested_context(Verification)
    assoc = ae.associate(dicom_node.host, dicom_node.port, ae_title=dicom_node.ae_title)
    try:
        assert assoc.is_established
        acceptors = [a for a in dicom_node.ae.active_associations if a.is_acceptor]
        assert acceptors
        sock = acceptors[0].dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert acceptors[0].ris_station.ae_title == "CT1"
    finally:
        assoc.release()


def test_identifiers_are_never_logged(dicom_node):
    from pynetdicom import _config

    assert _config.LOG_REQUEST_IDENTIFIERS is False
    assert _config.LOG_RESPONSE_IDENTIFIERS is False


def test_idle_association_is_aborted_after_network_timeout(dicom_node_factory, register_station):
    register_station("CT1")
    node = dicom_node_factory(network_timeout=0.5)
    ae = AE(ae_title="CT1")
    ae.add_requested_context(Verification)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    assert assoc.is_established
    started = time.monotonic()
    while assoc.is_established and time.monotonic() - started < 10:
        time.sleep(0.05)
    assert assoc.is_aborted
    assert 0.3 < time.monotonic() - started < 5


def test_association_threads_close_their_database_connections(dicom_node, register_station):
    from django.db import connection

    register_station("CT1")

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            return cursor.fetchone()[0]

    before = backends()
    for _ in range(5):
        assert echo(dicom_node).returncode == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and backends() > before:
        time.sleep(0.05)
    assert backends() == before
