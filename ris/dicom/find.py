"""C-FIND SCP loop for the node: pre-encoded identifiers and a cheap response path.

pynetdicom's ``_c_find_scp`` re-encodes every pending identifier with pydicom and builds a
fresh DIMSE message per response (~1 ms per match). Handlers on this node may yield
``(status, bytes)`` where the bytes are the identifier already encoded in the presentation
context's transfer syntax; Datasets still work. The pending C-FIND-RSP command set is the
same for every match of a request, so it is encoded once and each response is sent as two
P-DATA-TF PDUs (command, data) without building a message object.

Also differs from pynetdicom on purpose: a Warning status ends the responses (it is a
final status, e.g. 0xB001 "matching reached response limit"), and handler exceptions are
answered with 0xC311 like pynetdicom does.
"""

from __future__ import annotations

import logging
import struct
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import QueryRetrieveServiceClass
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    STATUS_CANCEL,
    STATUS_FAILURE,
    STATUS_PENDING,
    STATUS_SUCCESS,
    STATUS_WARNING,
)

logger = logging.getLogger(__name__)

FLUSH_BYTES = 32 * 1024  # write pending responses in batches of about this size


def _pending_command_bytes(req: C_FIND, status: int) -> bytes:
    """The C-FIND-RSP command set (Implicit VR LE, PS3.7 9.3.2.2) for a pending response."""
    from pynetdicom.dimse_messages import C_FIND_RSP

    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = req.MessageID
    rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
    rsp.Status = status
    rsp.Identifier = BytesIO(b"\x00\x00")  # any non-empty identifier: "a dataset follows"
    msg = C_FIND_RSP()
    msg.primitive_to_message(rsp)  # sets Command Data Set Type and the group length
    return encode(msg.command_set, True, True)


def _fragments(data: bytes, context_id: int, is_command: bool, max_pdv: int) -> list[bytes]:
    """Split ``data`` into PDV payloads ``[context id, header, fragment]`` (PS3.8 E.2)."""
    out = []
    total = len(data)
    step = max_pdv if max_pdv else total or 1
    offset = 0
    while True:
        chunk = data[offset : offset + step]
        offset += len(chunk)
        last = offset >= total
        header = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
        out.append(bytes([context_id, header]) + chunk)
        if last:
            break
    return out


def _pdata_pdus(command: bytes, data: bytes, context_id: int, peer_max: int) -> bytes:
    """P-DATA-TF PDUs (PS3.8 9.3.5) for one message: command and data set PDVs.

    Command and data share one PDU when they fit in the peer's Maximum Length Received
    (the limit applies to the PDU's variable field: every PDV item is 4 + 2 + fragment bytes).
    """
    limit = peer_max or (1 << 31)
    out = bytearray()

    def pdu(items: list[bytes]) -> None:
        body = b"".join(items)
        out.extend(b"\x04\x00" + struct.pack(">I", len(body)) + body)

    def item(header: int, fragment: bytes) -> bytes:
        return struct.pack(">IBB", len(fragment) + 2, context_id, header) + fragment

    if len(command) + len(data) + 12 <= limit:
        pdu([item(0x03, command), item(0x02, data)])
        return bytes(out)
    step = max(1, limit - 6)
    for header_last, header_more, payload in ((0x03, 0x01, command), (0x02, 0x00, data)):
        offset = 0
        while True:
            chunk = payload[offset : offset + step]
            offset += len(chunk)
            last = offset >= len(payload)
            pdu([item(header_last if last else header_more, chunk)])
            if last:
                break
    return bytes(out)


class FastFindServiceClass(QueryRetrieveServiceClass):
    """C-FIND SCP accepting pre-encoded identifiers (used by the node for every C-FIND)."""

    statuses = QR_FIND_SERVICE_CLASS_STATUS

    def SCP(self, req: C_FIND, context) -> None:
        self._c_find_scp(req, context)

    def _send_pdata(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            primitive = P_DATA()
            # presentation_data_value_list: [[context id, PDV data incl. the header byte]]
            primitive.presentation_data_value_list = [[payload[0], payload[1:]]]
            self.dimse.dul.send_pdu(primitive)

    def _c_find_scp(self, req: C_FIND, context) -> None:
        cx_id = int(context.context_id)
        transfer_syntax = context.transfer_syntax[0]
        rsp = C_FIND()
        rsp.MessageID = req.MessageID
        rsp.MessageIDBeingRespondedTo = req.MessageID
        rsp.AffectedSOPClassUID = req.AffectedSOPClassUID

        try:
            generator = evt.trigger(
                self.assoc,
                evt.EVT_C_FIND,
                {"request": req, "context": context.as_tuple, "_is_cancelled": self.is_cancelled},
            )
        except Exception:
            logger.exception("exception in the C-FIND handler")
            rsp.Status = 0xC311
            self.dimse.send_msg(rsp, cx_id)
            return
        if not self.assoc.is_established:
            return
        if generator is None:
            generator = iter([(0x0000, None)])

        max_pdv = self._max_pdv()
        peer_max = max_pdv + 6 if max_pdv else 0
        command_cache: dict[int, Any] = {}
        count = 0
        # Pending responses are framed here and written straight to the socket (in batches)
        # when the node's socket allows it; the DUL state machine stays in Sta6 throughout.
        direct = getattr(self.dimse.dul.socket, "send_direct", None)
        if not getattr(self.assoc, "ris_accelerated", True):
            direct = None  # RIS_DICOM_ACCELERATED off: every PDU through the DUL
        buffer = bytearray()
        for result, exc in self._wrap_handler(generator):
            rsp.Identifier = None
            if exc:
                logger.error("exception in the C-FIND handler", exc_info=exc)
                if direct is not None and buffer and not self._flush(direct, buffer):
                    return
                rsp.Status = 0xC311
                self.dimse.send_msg(rsp, cx_id)
                return
            status_value, identifier = result
            if not self.assoc.is_established:
                return
            rsp = self.validate_status(status_value, rsp)
            category = self.statuses.get(rsp.Status, (STATUS_FAILURE, ""))[0]
            if category == STATUS_PENDING:
                if isinstance(identifier, bytes | bytearray | memoryview):
                    data = bytes(identifier)
                elif isinstance(identifier, Dataset):
                    data = encode(
                        identifier,
                        transfer_syntax.is_implicit_VR,
                        transfer_syntax.is_little_endian,
                        transfer_syntax.is_deflated,
                    )
                    if not data:
                        rsp.Status = 0xC312
                        self.dimse.send_msg(rsp, cx_id)
                        return
                else:
                    rsp.Status = 0xC312
                    self.dimse.send_msg(rsp, cx_id)
                    return
                if direct is not None:
                    command_bytes = command_cache.get(rsp.Status)
                    if command_bytes is None:
                        command_bytes = command_cache[rsp.Status] = _pending_command_bytes(req, rsp.Status)
                    buffer += _pdata_pdus(command_bytes, data, cx_id, peer_max)
                    if len(buffer) >= FLUSH_BYTES and not self._flush(direct, buffer):
                        return
                else:
                    command = command_cache.get(rsp.Status)
                    if command is None:
                        command = _fragments(_pending_command_bytes(req, rsp.Status), cx_id, True, max_pdv)
                        command_cache[rsp.Status] = command
                    self._send_pdata([*command, *_fragments(data, cx_id, False, max_pdv)])
                count += 1
                continue
            if direct is not None and buffer and not self._flush(direct, buffer):
                return
            # Success, Warning, Cancel, Failure: final, without an identifier.
            if category not in (STATUS_SUCCESS, STATUS_WARNING, STATUS_CANCEL, STATUS_FAILURE):
                logger.warning("unknown C-FIND status 0x%04X from handler", rsp.Status)
            self.dimse.send_msg(rsp, cx_id)
            logger.debug("C-FIND: %d matches, final 0x%04X", count, rsp.Status)
            return

        if direct is not None and buffer and not self._flush(direct, buffer):
            return
        if not self.assoc.is_established:
            return
        rsp.Identifier = None
        rsp.Status = 0x0000
        self.dimse.send_msg(rsp, cx_id)
        logger.debug("C-FIND: %d matches, final 0x0000", count)

    @staticmethod
    def _flush(direct, buffer: bytearray) -> bool:
        ok = direct(bytes(buffer))
        buffer.clear()
        return ok

    def _max_pdv(self) -> int:
        # The peer's Maximum Length Received bounds each P-DATA-TF's variable field; a PDV item
        # adds 6 bytes (length + context id + header), pynetdicom's own arithmetic.
        peer_max = self.assoc.acceptor.maximum_length if self.assoc.is_requestor else None
        peer_max = self.dimse.maximum_pdu_size if peer_max is None else peer_max
        return max(0, int(peer_max) - 6) if peer_max else 0


def is_fast_find(msg: Any) -> bool:
    return isinstance(msg, C_FIND) and msg.MessageIDBeingRespondedTo is None
