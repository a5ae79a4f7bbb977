"""The node's receive fast paths (ris/dicom/transport.py) against pynetdicom/pydicom's own."""

from __future__ import annotations

import io
import struct
import warnings
from types import SimpleNamespace

import pytest
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless
from pynetdicom import evt
from pynetdicom.dsutils import create_file_meta
from pynetdicom.pdu import P_DATA_TF

from ris.dicom import transport
from ris.dicom.transport import RISDUL


def _pydicom_meta(sop_class, sop_instance, ts) -> bytes:
    buffer = io.BytesIO()
    meta = create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=ts)
    write_file_meta_info(buffer, meta)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "ts"),
    [
        (CTImageStorage, "1.2.3.4", ExplicitVRLittleEndian),  # even length
        (CTImageStorage, "1.2.3.45", JPEG2000Lossless),  # odd length: padded with NUL
        ("1.2.840.10008.5.1.4.1.1.2", "2.25." + "9" * 59, "1.2.840.10008.1.2"),  # 64 characters
    ],
)
def test_file_meta_encoding_is_byte_identical_to_pydicom(sop_class, sop_instance, ts):
    ours = transport.encode_file_meta(sop_class, sop_instance, ts)
    assert ours == _pydicom_meta(sop_class, sop_instance, ts)
    buffer = io.BytesIO()
    transport._fast_write_file_meta_info(
        buffer,
        transport._fast_create_file_meta(
            sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=ts
        ),
    )
    assert buffer.getvalue() == ours


@pytest.mark.parametrize(
    "sop_instance", ["1.2.3 ", "1.2.3\0", "1.2.x", "1.02.3", "1..2", "", "2.25." + "9" * 60, None]
)
def test_file_meta_falls_back_to_pydicom_for_unusual_uids(sop_instance):
    assert transport.encode_file_meta(CTImageStorage, sop_instance, ExplicitVRLittleEndian) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UI value
        meta = transport._fast_create_file_meta(
            sop_class_uid=CTImageStorage,
            sop_instance_uid=sop_instance,
            transfer_syntax=ExplicitVRLittleEndian,
        )
    assert not isinstance(meta, bytes)  # pydicom's FileMetaDataset, written (or refused) by pydicom


def _pdv(context_id: int, header: int, data: bytes) -> bytes:
    return struct.pack(">IBB", len(data) + 2, context_id, header) + data


def _pdu(*pdvs: bytes) -> bytearray:
    body = b"".join(pdvs)
    return bytearray(struct.pack(">BBI", 0x04, 0, len(body)) + body)


def _dul(bound=()):
    dul = RISDUL.__new__(RISDUL)  # only _decode_pdu is exercised: no thread, no sockets
    handlers = {event: [(lambda event: None, None)] for event in bound}
    dul._assoc = SimpleNamespace(
        get_handlers=lambda event: handlers.get(event, []),
        _abort_nonblocking=None,
        _abort_blocking=None,
        abort=None,
    )
    return dul


def _values(pdu: P_DATA_TF) -> list[tuple[int, bytes]]:
    return [(cid, bytes(data)) for cid, data in pdu.to_primitive().presentation_data_value_list]


def test_pdata_decoding_matches_pynetdicom():
    raw = _pdu(_pdv(1, 0x03, b"command"), _pdv(3, 0x00, b"D" * 1000), _pdv(3, 0x02, b"last"))
    ours, event = _dul()._decode_pdu(raw)
    reference = P_DATA_TF()
    reference.decode(bytes(raw))
    assert event == "Evt10"
    assert (
        _values(ours)
        == _values(reference)
        == [(1, b"\x03command"), (3, b"\x00" + b"D" * 1000), (3, b"\x02last")]
    )


@pytest.mark.parametrize(
    "raw",
    [
        _pdu(_pdv(1, 0x03, b"abc"))[:-1] + b"",  # item runs past the PDU
        bytearray(b"\x04\x00\x00\x00\x00\x03\x00\x00\x00"),  # truncated item header
        bytearray(b"\x04\x00\x00\x00\x00\x05\x00\x00\x00\x00\x01"),  # zero item length
    ],
)
def test_malformed_pdata_is_refused_like_pynetdicom(raw):
    raw[2:6] = struct.pack(">I", len(raw) - 6)
    with pytest.raises(ValueError):
        _dul()._decode_pdu(raw)
    with pytest.raises((AssertionError, struct.error)):
        P_DATA_TF().decode(bytes(raw))


def test_pdu_observers_get_pynetdicoms_own_decoding():
    raw = _pdu(_pdv(1, 0x03, b"command"))
    for event in (evt.EVT_PDU_RECV, evt.EVT_DATA_RECV):
        seen = []
        dul = _dul()
        dul.assoc.get_handlers = lambda e, event=event, seen=seen: [(seen.append, None)] if e == event else []
        pdu, _event = dul._decode_pdu(raw)
        assert isinstance(pdu.presentation_data_value_items[0].presentation_data_value, bytes)
        assert len(seen) == 1  # the bound handler saw the PDU (or its bytes)
    pdu, _event = _dul()._decode_pdu(raw)
    assert isinstance(pdu.presentation_data_value_items[0].presentation_data_value, memoryview)


def test_guarded_socket_reads_whole_pdus_and_short_ones_at_close():
    import socket
    import threading

    ours, peer = socket.socketpair()
    try:
        sock = transport.GuardedAssociationSocket.__new__(transport.GuardedAssociationSocket)
        sock.socket, sock.max_pdata, sock._reading_body, sock._body_bounded = ours, 16384, False, False
        body = bytes(range(256)) * 40  # 10240 bytes, sent in small pieces
        pdu = struct.pack(">BBI", 0x04, 0, len(body)) + body

        def send_slowly():
            for start in range(0, len(pdu), 1000):
                peer.sendall(pdu[start : start + 1000])
            peer.sendall(struct.pack(">BBI", 0x04, 0, 100) + b"x" * 10)  # then closes mid-body
            peer.close()

        sender = threading.Thread(target=send_slowly)
        sender.start()
        assert sock.recv(6) == pdu[:6]
        assert sock.recv(len(body)) == body
        assert sock.recv(6)[2:6] == struct.pack(">I", 100)
        assert sock.recv(100) == b"x" * 10  # what arrived before the close, like pynetdicom
        sender.join()
    finally:
        ours.close()


def _dimse(max_pdu=16384, bound=()):
    sent, seen = [], []
    dimse = transport.RISDIMSE.__new__(transport.RISDIMSE)
    dimse._assoc = SimpleNamespace(
        is_requestor=False,
        requestor=SimpleNamespace(maximum_length=max_pdu),
        get_handlers=lambda event: [(seen.append, None)] if event in bound else [],
        _abort_nonblocking=None,
        _abort_blocking=None,
        abort=None,
        dul=SimpleNamespace(send_pdu=lambda primitive: sent.append(P_DATA_TF(primitive).encode())),
    )
    return dimse, sent


def _store_rsp(**attrs):
    from pynetdicom.dimse_primitives import C_STORE

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = attrs.pop("msg_id", 7)
    rsp.AffectedSOPClassUID = attrs.pop("sop_class", CTImageStorage)
    rsp.AffectedSOPInstanceUID = attrs.pop("sop_instance", "1.2.826.0.1.3680043.8.498.1")
    for name, value in attrs.items():
        setattr(rsp, name, value)
    return rsp


def _invalid_uid_rsp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UI value
        return _store_rsp(Status=0x0000, sop_instance="1.02.3")


def _pynetdicom_pdus(rsp, max_pdu=16384):
    dimse, sent = _dimse(max_pdu)
    DIMSEServiceProvider = transport.RISDIMSE.__mro__[1]
    DIMSEServiceProvider.send_msg(dimse, rsp, 5)
    return sent


@pytest.mark.parametrize(
    "attrs",
    [
        {"Status": 0x0000},
        {"Status": 0xA700, "msg_id": 65535, "sop_instance": "1.2.3.45"},  # odd-length UID
        {"Status": 0xB007, "msg_id": 0, "sop_class": "1.2.840.10008.5.1.4.1.1.2.1"},
    ],
)
def test_store_response_is_byte_identical_to_pynetdicom(attrs):
    rsp = _store_rsp(**attrs)
    expected = _pynetdicom_pdus(rsp)
    dimse, sent = _dimse()
    dimse.send_msg(rsp, 5)
    assert transport.encode_store_response(rsp) is not None  # the fast path was taken
    assert sent == expected and len(sent) == 1


@pytest.mark.parametrize(
    "attrs",
    [
        {"Status": 0xC000, "ErrorComment": "cannot understand"},
        {"Status": 0xA900, "OffendingElement": [0x00080018]},
        None,  # an invalid Affected SOP Instance UID
    ],
)
def test_unusual_store_responses_go_through_pynetdicom(attrs):
    rsp = _store_rsp(**attrs) if attrs else _invalid_uid_rsp()
    assert transport.encode_store_response(rsp) is None
    dimse, sent = _dimse()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom re-validates the invalid UID while encoding
        dimse.send_msg(rsp, 5)
        assert sent == _pynetdicom_pdus(rsp)


def test_store_response_falls_back_when_observed_or_peer_pdu_is_tiny():
    rsp = _store_rsp(Status=0x0000)
    dimse, sent = _dimse(bound=[evt.EVT_DIMSE_SENT])
    dimse.send_msg(rsp, 5)
    assert sent == _pynetdicom_pdus(rsp)
    dimse, sent = _dimse(max_pdu=64)  # the command set needs several fragments
    dimse.send_msg(rsp, 5)
    assert len(sent) > 1 and sent == _pynetdicom_pdus(rsp, max_pdu=64)
