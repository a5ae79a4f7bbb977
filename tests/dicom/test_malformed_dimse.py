"""Malformed DIMSE messages on a real association (issue 9 item 5).

A raw-socket SCU associates for CT Image Storage and Verification, then sends command sets
the node must survive: missing, empty, overlong or non-UID UIDs, wrong VRs and lengths,
truncated command sets and data sets. Each one gets a failure status (C-STORE-RSP) or an
A-ABORT; never silence, never a dead association thread; the node keeps serving.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import pytest
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import Verification

from tests.dicom.test_node import echo
from tests.imaging.dicom_data import ct_dataset

pytestmark = [pytest.mark.dicom, pytest.mark.postgres]


def _associate_rq(called: str) -> bytes:
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context
    from pynetdicom.transport import AddressInformation

    primitive = A_ASSOCIATE()
    primitive.calling_ae_title = "CT1"
    primitive.called_ae_title = called
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_presentation_address = AddressInformation("127.0.0.1", 1)
    primitive.called_presentation_address = AddressInformation("127.0.0.1", 2)
    contexts = []
    for cx_id, sop in ((1, CTImageStorage), (3, Verification)):
        cx = build_context(sop, [ImplicitVRLittleEndian])
        cx.context_id = cx_id
        contexts.append(cx)
    primitive.presentation_context_definition_list = contexts
    ml = MaximumLengthNotification()
    ml.maximum_length_received = 65536
    primitive.user_information = [ml]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _element(group: int, element: int, value: bytes) -> bytes:
    """Implicit VR Little Endian element (PS3.5 7.1.3), value as given (no padding)."""
    return struct.pack("<HHI", group, element, len(value)) + value


def _ui(uid: str) -> bytes:
    raw = uid.encode("latin-1")
    return raw + b"\0" if len(raw) % 2 else raw


def _command(elements: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(_element(0x0000, tag, value) for tag, value in elements)
    return _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def _store_command(
    *, sop_class: bytes | None, sop_instance: bytes | None, message_id: bytes = struct.pack("<H", 7)
) -> bytes:
    elements = []
    if sop_class is not None:
        elements.append((0x0002, sop_class))
    elements += [(0x0100, struct.pack("<H", 0x0001)), (0x0110, message_id), (0x0700, struct.pack("<H", 0))]
    elements.append((0x0800, struct.pack("<H", 0x0000)))  # a data set follows
    if sop_instance is not None:
        elements.append((0x1000, sop_instance))
    return _command(elements)


def _pdata(context_id: int, header: int, payload: bytes) -> bytes:
    item = struct.pack(">IBB", len(payload) + 2, context_id, header) + payload
    return struct.pack(">BBI", 0x04, 0, len(item)) + item


def _dataset(sop_uid: str) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = ct_dataset(sop_uid=sop_uid, charset=None)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    return buffer.getvalue()


def _read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    header = sock.recv(6, socket.MSG_WAITALL)
    if len(header) < 6:
        return None
    length = struct.unpack(">I", header[2:6])[0]
    body = sock.recv(length, socket.MSG_WAITALL) if length else b""
    return header[0], body


def _response(sock: socket.socket, timeout: float = 20) -> tuple[str, int | None]:
    """('status', code) for a C-STORE/C-ECHO-RSP, ('abort', reason) for an A-ABORT, ('closed', None)."""
    sock.settimeout(timeout)
    command = b""
    try:
        while True:
            pdu = _read_pdu(sock)
            if pdu is None:
                return "closed", None
            pdu_type, body = pdu
            if pdu_type == 0x07:
                return "abort", body[3]
            if pdu_type != 0x04:
                return f"pdu 0x{pdu_type:02x}", None
            offset = 0
            while offset < len(body):
                length = struct.unpack(">I", body[offset : offset + 4])[0]
                header = body[offset + 5]
                command += body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if header & 0x01 and header & 0x02:  # last fragment of a command
                    at = command.find(struct.pack("<HHI", 0, 0x0900, 2))
                    assert at >= 0, command
                    return "status", struct.unpack("<H", command[at + 8 : at + 10])[0]
    except TimeoutError:
        return "silence", None


@contextlib.contextmanager
def _association(node):
    sock = socket.create_connection((node.host, node.port), timeout=10)
    try:
        sock.sendall(_associate_rq(node.ae_title))
        pdu = _read_pdu(sock)
        assert pdu and pdu[0] == 0x02, pdu
        yield sock
    finally:
        sock.close()


LONG_UID = "1.2." + "3" * 70  # 74 characters: UI values are at most 64 (PS3.5 Table 6.2-1)


def _cases():
    """(name, command set, data set SOP Instance UID, expected): 0xA900 or "status or abort"."""
    uid = "1.2.826.0.1.3680043.10.543.9"
    ok_class = _ui(CTImageStorage)
    store = _store_command
    yield "empty affected SOP instance UID", store(sop_class=ok_class, sop_instance=b""), uid, 0xA900
    yield "missing affected SOP instance UID", store(sop_class=ok_class, sop_instance=None), uid, 0xA900
    yield (
        "overlong affected SOP instance UID",
        store(sop_class=ok_class, sop_instance=_ui(LONG_UID)),
        LONG_UID,
        0xA900,
    )
    yield "non-UID characters", store(sop_class=ok_class, sop_instance=b"1.2.abc\xff"), uid, 0xA900
    yield "empty affected SOP class UID", store(sop_class=b"", sop_instance=_ui(uid)), uid, 0xA900
    yield "missing affected SOP class UID", store(sop_class=None, sop_instance=_ui(uid)), uid, 0xA900
    yield (
        "overlong affected SOP class UID",
        store(sop_class=_ui(LONG_UID), sop_instance=_ui(uid)),
        uid,
        0xA900,
    )
    yield (
        "UID with the wrong VR (an US value)",
        store(sop_class=ok_class, sop_instance=struct.pack("<H", 7)),
        uid,
        0xA900,
    )
    yield (
        "message ID of the wrong length (US is 2 bytes)",
        store(sop_class=ok_class, sop_instance=_ui(uid), message_id=b"\x07\x00\x00"),
        uid,
        None,
    )
    missing_id = _command(
        [(0x0002, ok_class), (0x0100, struct.pack("<H", 1)), (0x0800, b"\0\0"), (0x1000, _ui(uid))]
    )
    yield "message ID missing", missing_id, uid, None
    yield "command set truncated", store(sop_class=ok_class, sop_instance=_ui(uid))[:-7], uid, None
    lying = _element(0, 0, struct.pack("<I", 4000)) + store(sop_class=ok_class, sop_instance=_ui(uid))[12:]
    yield "group length lies", lying, uid, "any"  # pydicom ignores group lengths: stored or refused
    unknown = _command([(0x0100, struct.pack("<H", 0x0FF0)), (0x0110, b"\1\0"), (0x0800, b"\1\1")])
    yield "unknown command field", unknown, uid, None


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
def test_malformed_c_store_gets_a_status_or_an_abort(dicom_node, register_station, case):
    _name, command, dataset_uid, expected = case
    register_station("CT1")
    with _association(dicom_node) as sock:
        sock.sendall(_pdata(1, 0x03, command))
        with contextlib.suppress(OSError):
            sock.sendall(_pdata(1, 0x02, _dataset(dataset_uid)))
        kind, value = _response(sock)
    if expected == "any":
        assert kind in ("status", "abort"), (kind, value)
    elif expected is not None:
        assert (kind, value) == ("status", expected)
    else:
        assert kind in ("status", "abort"), (kind, value)
        if kind == "status":
            assert value is not None and value >= 0xA000, hex(value or 0)
        else:
            assert value == 0x06, value  # invalid PDU parameter value (PS3.8 Table 9-26)
    assert echo(dicom_node).returncode == 0  # the node keeps serving


def test_truncated_data_set_gets_a_failure_status(dicom_node, register_station):
    register_station("CT1")
    uid = generate_uid()
    data = _dataset(uid)
    with _association(dicom_node) as sock:
        sock.sendall(_pdata(1, 0x03, _store_command(sop_class=_ui(CTImageStorage), sop_instance=_ui(uid))))
        sock.sendall(_pdata(1, 0x02, data[: len(data) // 2 + 3]))  # "last fragment", cut mid-element
        kind, value = _response(sock)
    assert (kind, value) == ("status", 0xC000)
    assert echo(dicom_node).returncode == 0


def test_association_goes_on_after_a_refused_object(dicom_node, register_station):
    """A status, not an abort, for a bad UID: the next object on the same association is stored."""
    register_station("CT1")
    uid = generate_uid()
    with _association(dicom_node) as sock:
        sock.sendall(_pdata(1, 0x03, _store_command(sop_class=_ui(CTImageStorage), sop_instance=b"")))
        sock.sendall(_pdata(1, 0x02, _dataset(uid)))
        assert _response(sock)[0] == "status"
        sock.sendall(_pdata(1, 0x03, _store_command(sop_class=_ui(CTImageStorage), sop_instance=_ui(uid))))
        sock.sendall(_pdata(1, 0x02, _dataset(uid)))
        assert _response(sock) == ("status", 0x0000)
    deadline = time.monotonic() + 5
    from imaging.models import ReceivedObject

    while time.monotonic() < deadline and not ReceivedObject.objects.filter(sop_instance_uid=uid).exists():
        time.sleep(0.05)
    assert ReceivedObject.objects.filter(sop_instance_uid=uid).exists()
