"""pynetdicom transport pieces the node needs beyond the library defaults.

* ``RISAssociationServer``: TCP_NODELAY on every accepted socket (a C-FIND answer is several
  small PDUs; Nagle + delayed ACK cost ~27 ms per query here) and TLS wrapping *without* the
  handshake, so a silent TLS peer can never block the accept loop.
* ``RISRequestHandler``: builds our ``RISAssociation`` with the guarded socket and the policy
  ACSE, binds the server's handlers.
* ``GuardedAssociationSocket``: reads the 6-byte PDU header and aborts (A-ABORT, source
  service-provider, reason "invalid PDU parameter value") when the peer declares a PDU
  longer than we advertised, before pynetdicom tries to buffer it (it trusts the declared
  length, so a 4 GiB declaration would otherwise be read into memory).
* ``RISDUL``: pynetdicom's upper-layer reactor made event-driven (``select`` on the socket and a
  wake-up socket) instead of sleeping 1 ms per idle loop; P-DATA-TF PDUs decoded into PDVs that
  are views of the receive buffer (no copies) when no PDU-level event handler is bound.
* Receive path of a C-STORE (measured with ``bench/ingest.py``: ~265 → ~290-340 instances/s):
  the guarded socket reads each PDU into one preallocated buffer (pynetdicom: 4 KiB reads
  appended one by one), the File Meta Information of the received file is encoded directly
  (``encode_file_meta``), and ``RISDIMSE`` encodes the common C-STORE-RSP directly
  (``encode_store_response``). Both encoders are byte-identical to pydicom/pynetdicom
  (tests/dicom/test_transport_receive.py) and hand anything unusual back to them.
* ``RISAssociation``: per-thread database hygiene (``close_old_connections`` before, all
  connections closed after: the thread dies with the association), the deferred TLS
  handshake bounded by the ACSE timeout, and a place for the policy's station record.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import select
import socket
import ssl
import struct
import threading
import time
from datetime import datetime
from io import BytesIO
from typing import TYPE_CHECKING, Any, cast

from django.db import close_old_connections, connections
from pydicom.filewriter import write_file_meta_info as _pydicom_write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ as C_STORE_RQ_MESSAGE
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_CANCEL, C_FIND, C_STORE, N_EVENT_REPORT
from pynetdicom.dsutils import create_file_meta as _pynetdicom_create_file_meta
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu import P_DATA_TF as P_DATA_TF_PDU
from pynetdicom.pdu_items import PresentationDataValueItem
from pynetdicom.pdu_primitives import A_P_ABORT, P_DATA
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer
from pynetdicom.utils import make_target

from .find import FastFindServiceClass
from .frontdoor import FrontDoor

if TYPE_CHECKING:  # pragma: no cover
    from .policy import AssociationPolicy, StationInfo

logger = logging.getLogger(__name__)

# PDU types (PS3.8 9.3): 0x04 is P-DATA-TF, bounded by our advertised Maximum Length.
P_DATA_TF = 0x04
KNOWN_PDU_TYPES = frozenset(range(0x01, 0x08))
# Every other PDU (A-ASSOCIATE-RQ with up to 128 presentation contexts, release, abort) fits
# comfortably in this; the standard gives them no negotiated limit.
MAX_CONTROL_PDU = 256 * 1024


# -- File Meta Information of a received C-STORE dataset -------------------------------------
# pynetdicom writes the File Meta Information of every chunked C-STORE receive by building a
# pydicom FileMetaDataset (create_file_meta) and encoding it (write_file_meta_info): ~0.2 ms of
# pure Python per object on the DUL thread. For plain UIDs the encoding is fixed (Explicit VR
# Little Endian, PS3.10 7.1), so it is built directly here, byte for byte what pydicom writes
# (tests/dicom/test_transport_receive.py compares them); anything else goes through pydicom.
# A valid UI value (PS3.5 9.1: no leading zeros, no empty components); others go to pydicom,
# which warns about or refuses them exactly as before.
_PLAIN_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")


class _EncodedFileMeta(bytes):
    """File Meta Information already encoded (what ``_fast_create_file_meta`` returns)."""


def _explicit_short(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def encode_file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes | None:
    """pydicom's encoding of pynetdicom's ``create_file_meta`` result, or None if not plain."""
    uids = (sop_class_uid, sop_instance_uid, transfer_syntax, PYNETDICOM_IMPLEMENTATION_UID)
    version = PYNETDICOM_IMPLEMENTATION_VERSION
    if not all(isinstance(uid, str) and len(uid) <= 64 and _PLAIN_UID.fullmatch(uid) for uid in uids):
        return None
    if not version.isascii() or not version.isprintable() or version != version.strip():
        return None

    def ui(uid: str) -> bytes:
        raw = uid.encode("ascii")
        return raw + b"\0" if len(raw) % 2 else raw

    raw_version = version.encode("ascii")
    if len(raw_version) % 2:
        raw_version += b" "
    body = b"".join(
        (
            struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
            _explicit_short(0x0002, b"UI", ui(sop_class_uid)),
            _explicit_short(0x0003, b"UI", ui(sop_instance_uid)),
            _explicit_short(0x0010, b"UI", ui(transfer_syntax)),
            _explicit_short(0x0012, b"UI", ui(PYNETDICOM_IMPLEMENTATION_UID)),
            _explicit_short(0x0013, b"SH", raw_version),
        )
    )
    return _explicit_short(0x0000, b"UL", struct.pack("<I", len(body))) + body


def _fast_create_file_meta(*, sop_class_uid, sop_instance_uid, transfer_syntax, **kwargs):
    encoded = None if kwargs else encode_file_meta(sop_class_uid, sop_instance_uid, transfer_syntax)
    if encoded is None:
        return _pynetdicom_create_file_meta(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax,
            **kwargs,
        )
    return _EncodedFileMeta(encoded)


def _fast_write_file_meta_info(fp, file_meta, enforce_standard: bool = True) -> None:
    if isinstance(file_meta, _EncodedFileMeta):
        fp.write(file_meta)
        return
    _pydicom_write_file_meta_info(fp, file_meta, enforce_standard)


# -- C-STORE-RSP -----------------------------------------------------------------------------
def encode_store_response(primitive: C_STORE) -> bytes | None:
    """The C-STORE-RSP command set (Implicit VR LE, PS3.7 9.3.1.2) as pynetdicom encodes it.

    pynetdicom builds a pydicom Dataset for every response and encodes it twice (once for the
    group length): ~0.3 ms on the path between the handler's return and the peer's next
    object. Only the common response is encoded here (no Error Comment, no Offending Element,
    valid UIDs); None means "let pynetdicom do it".
    """
    msg_id, status = primitive.MessageIDBeingRespondedTo, primitive.Status
    if primitive.ErrorComment is not None or primitive.OffendingElement is not None:
        return None
    if getattr(primitive, "_dataset_path", None) or primitive.DataSet is not None:
        return None
    if not (
        isinstance(msg_id, int)
        and 0 <= msg_id <= 0xFFFF
        and isinstance(status, int)
        and 0 <= status <= 0xFFFF
    ):
        return None
    parts = []
    for element, uid in ((0x0002, primitive.AffectedSOPClassUID), (0x1000, primitive.AffectedSOPInstanceUID)):
        if uid is None:
            parts.append((element, None))
            continue
        if not (isinstance(uid, str) and len(uid) <= 64 and _PLAIN_UID.fullmatch(uid)):
            return None
        raw = uid.encode("ascii")
        parts.append((element, raw + b"\0" if len(raw) % 2 else raw))
    (_, sop_class), (_, sop_instance) = parts
    elements = [
        (0x0002, sop_class),
        (0x0100, struct.pack("<H", 0x8001)),  # Command Field: C-STORE-RSP
        (0x0120, struct.pack("<H", msg_id)),
        (0x0800, struct.pack("<H", 0x0101)),  # Command Data Set Type: no data set
        (0x0900, struct.pack("<H", status)),
        (0x1000, sop_instance),
    ]
    body = b"".join(
        struct.pack("<HHI", 0x0000, tag, len(value)) + value for tag, value in elements if value is not None
    )
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


# -- malformed DIMSE messages ----------------------------------------------------------------
# A C-STORE-RQ whose Affected SOP Class/Instance UID is missing, empty, longer than 64
# characters or not made of digits and dots is answered 0xA900 here: pynetdicom's chunked
# receive needs both to write the File Meta Information and raises otherwise (which used to
# kill the association's DUL thread with no answer). Every other message that cannot be
# decoded ends the association with an A-ABORT (service-provider, invalid PDU parameter value)
# recorded as ``dicom.association_aborted`` reason ``malformed_dimse``.
STATUS_DATASET_MISMATCH = 0xA900  # PS3.4 Table B.2-1 "Data Set does not match SOP Class"
STATUS_CANNOT_UNDERSTAND = 0xC000
_UID_CHARS = re.compile(r"[0-9.]{1,64}")


def command_uid_problem(command_set, keyword: str) -> str:
    """Why the command set's ``keyword`` UID is unusable ("" when it is usable)."""
    label = "Affected SOP Instance UID" if keyword == "AffectedSOPInstanceUID" else "Affected SOP Class UID"
    try:
        value = command_set.get(keyword)
    except Exception:
        return f"{label} cannot be decoded"
    if value is None:
        return f"{label} is missing"
    value = str(value).rstrip("\0 ")
    if not value:
        return f"{label} is empty"
    if len(value) > 64:
        return f"{label} is longer than 64 characters"
    if not _UID_CHARS.fullmatch(value):
        return f"{label} is not a valid UID"
    return ""


class _DiscardFile:
    """Where the data set of a refused C-STORE goes (pynetdicom writes, then flushes ``.file``)."""

    file = property(lambda self: self)

    def write(self, data) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class RISDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider; common C-STORE responses are encoded directly, malformed
    messages get a status or an A-ABORT (never an exception in the DUL thread)."""

    def receive_primitive(self, primitive) -> None:
        # pynetdicom.dimse.DIMSEServiceProvider.receive_primitive, with every decoding
        # failure answered (0xA900/0xC000 for a C-STORE, else an A-ABORT with a reason) and
        # the command UIDs of a C-STORE checked once its command set is complete.
        message = self.message
        if message is None:
            message = self.message = DIMSEMessage()
        if getattr(message, "ris_refusal", None) is not None:
            self._continue_refused(primitive)
            return
        try:
            complete = message.decode_msg(primitive, self.assoc)
        except Exception as exc:
            self._decode_failed(primitive, exc)
            return
        message = self.message
        if isinstance(message, C_STORE_RQ_MESSAGE) and not getattr(message, "ris_checked", False):
            message.ris_checked = True
            try:
                problem = next(
                    (
                        p
                        for p in (
                            command_uid_problem(message.command_set, kw)
                            for kw in ("AffectedSOPInstanceUID", "AffectedSOPClassUID")
                        )
                        if p
                    ),
                    "",
                )
                message_id = message.command_set.get("MessageID") if problem else None
            except Exception as exc:  # an element pydicom cannot decode (wrong VR or length)
                self._abort_malformed(exc)
                return
            if problem and isinstance(message_id, int):
                self._refuse(message, STATUS_DATASET_MISMATCH, problem, message_id)
                if complete:
                    self._send_refusal(message)
                return
        if not complete:
            return
        evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": message})
        context_id = cast(int, message.context_id)
        try:
            d_primitive = message.message_to_primitive()
        except Exception as exc:
            self._abort_malformed(exc)
            return
        if isinstance(d_primitive, C_CANCEL) and len(self.cancel_req) < 10:
            self.cancel_req[cast(int, d_primitive.MessageIDBeingRespondedTo)] = d_primitive
        elif isinstance(d_primitive, N_EVENT_REPORT) and d_primitive.is_valid_request:
            # As pynetdicom: served at once in a thread of its own (would block the DUL).
            threading.Thread(
                target=make_target(self.assoc._serve_request), args=(d_primitive, context_id)
            ).start()
        else:
            self.msg_queue.put((context_id, d_primitive))
        # Reset the DIMSE message, ready for the next one (pynetdicom issue #41).
        message.encoded_command_set = BytesIO()
        message.data_set = BytesIO()
        message._data_set_file = None
        message._data_set_path = None
        self.message = None

    def _decode_failed(self, primitive, exc: Exception) -> None:
        message = self.message
        command_set = getattr(message, "command_set", None)
        message_id = None
        with contextlib.suppress(Exception):
            message_id = command_set.get("MessageID") if command_set is not None else None
        if not (
            isinstance(message, C_STORE_RQ_MESSAGE)
            and isinstance(message_id, int)
            and message.context_id is not None
            and command_set.get("CommandDataSetType") != 0x0101
        ):
            self._abort_malformed(exc)
            return
        problems = [
            command_uid_problem(command_set, kw) for kw in ("AffectedSOPInstanceUID", "AffectedSOPClassUID")
        ]
        problem = next((p for p in problems if p), "")
        if problem:
            self._refuse(message, STATUS_DATASET_MISMATCH, problem, message_id)
        else:
            logger.warning("C-STORE command set could not be processed: %s", type(exc).__name__)
            self._refuse(message, STATUS_CANNOT_UNDERSTAND, "Command set cannot be processed", message_id)
        # The rest of this P-DATA (data set fragments after the command) still counts.
        pdvs = list(primitive.presentation_data_value_list)
        final = next((i for i, (_cx, data) in enumerate(pdvs) if data[0] & 0x03 == 0x03), len(pdvs))
        rest = P_DATA()
        rest.presentation_data_value_list = pdvs[final + 1 :]
        if rest.presentation_data_value_list:
            self._continue_refused(rest)

    def _refuse(self, message, status: int, comment: str, message_id: int) -> None:
        """Answer ``status`` once the data set has arrived; discard what was received of it."""
        logger.warning(
            "C-STORE from %s refused 0x%04X before the handler: %s",
            self.assoc.requestor.address,
            status,
            comment,
        )
        received = getattr(message, "_data_set_file", None)
        if received is not None and hasattr(received, "_discard"):
            received._discard()  # our ReceiveFile: remove the partial file now
        elif received is not None:
            with contextlib.suppress(Exception):
                received.close()
                if message._data_set_path:
                    message._data_set_path.unlink(missing_ok=True)
        message._data_set_file = _DiscardFile()
        message._data_set_path = None
        message.ris_refusal = (status, comment, message_id, message.context_id)

    def _abort_malformed(self, exc: Exception) -> None:
        assoc = cast("RISAssociation", self.assoc)
        logger.warning(
            "aborting association from %s: malformed DIMSE message (%s)",
            assoc.requestor.address,
            type(exc).__name__,
        )
        assoc.ris_abort_reason = "malformed_dimse"
        assoc.ris_abort_detail = {"error": type(exc).__name__}
        received = getattr(self.message, "_data_set_file", None)
        if received is not None and hasattr(received, "_discard"):
            received._discard()  # the partial receive file goes now, not at the next sweep
        self.message = None
        sock = self.dul.socket
        if isinstance(sock, GuardedAssociationSocket):
            sock._send_abort(reason=0x06)  # invalid-PDU-parameter value
            sock.close()
        else:  # pragma: no cover - not our socket
            self.dul.event_queue.put("Evt19")

    def _continue_refused(self, primitive) -> None:
        message = self.message
        try:
            complete = message.decode_msg(primitive, self.assoc)
        except Exception:  # pragma: no cover - only data set fragments reach here
            complete = True
        if complete:
            self._send_refusal(message)

    def _send_refusal(self, message) -> None:
        status, comment, message_id, context_id = message.ris_refusal
        self.message = None
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo = message_id
        for keyword in ("AffectedSOPClassUID", "AffectedSOPInstanceUID"):
            if not command_uid_problem(message.command_set, keyword):
                with contextlib.suppress(Exception):
                    setattr(rsp, keyword, str(message.command_set.get(keyword)).rstrip("\\0 "))
        rsp.Status = status
        rsp.ErrorComment = comment[:64]
        self.send_msg(rsp, context_id)

    def send_msg(self, primitive, context_id: int) -> None:
        encoded = None
        is_store_response = type(primitive) is C_STORE and primitive.MessageIDBeingRespondedTo is not None
        if is_store_response and _accelerated(self.assoc) and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
            encoded = encode_store_response(primitive)
        max_pdu = self.maximum_pdu_size
        if encoded is None or (max_pdu and len(encoded) > max_pdu - 6):
            super().send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + encoded))  # last command fragment
        self.dul.send_pdu(pdata)


def _accelerated(assoc) -> bool:
    """RIS_DICOM_ACCELERATED for this association (ris/dicom/patches.py)."""
    return getattr(assoc, "ris_accelerated", True)


class _DeadlinePassed(Exception):
    """A PDU (or the A-ASSOCIATE-RQ of a pending connection) did not arrive in time."""


class GuardedAssociationSocket(AssociationSocket):
    """An AssociationSocket that refuses PDUs longer than we advertised and reads each PDU
    against a deadline.

    * Every PDU, once its first byte is readable, must arrive whole within
      ``pdu_read_timeout`` seconds (``RIS_DICOM_PDU_READ_TIMEOUT``); before the association is
      accepted, also before ``associate_deadline`` (``RIS_DICOM_ASSOCIATE_TIMEOUT`` after the
      TCP accept). pynetdicom reads with blocking ``recv`` calls and no deadline, so a peer that
      sends half a PDU would hold the thread (and an association slot) for ever.
    * A pending connection past its deadline is closed (no A-ABORT, as on ARTIM expiry, PS3.8
      9.2.3); an accepted association gets an A-ABORT (service-provider, reason not specified)
      and an audit event ``dicom.association_aborted`` with reason ``pdu_read_timeout``.
    """

    # Class-level defaults: the state of a socket built without __init__ (unit tests).
    pdu_read_timeout = 0.0
    front_door: FrontDoor | None = None
    associate_deadline: float | None = None
    accepted = False
    drop_reason = ""
    _pdu_deadline = float("inf")
    _is_tls = False

    def __init__(
        self,
        assoc: Association,
        client_socket: socket.socket,
        *,
        max_pdata: int,
        pdu_read_timeout: float = 0.0,
        front_door: FrontDoor | None = None,
    ) -> None:
        super().__init__(assoc, client_socket=client_socket)
        self.max_pdata = max_pdata
        self.pdu_read_timeout = pdu_read_timeout
        self.front_door = front_door
        self.associate_deadline: float | None = None  # set by FrontDoor.admit, cleared on accept
        self.accepted = False
        self.drop_reason = ""
        self._reading_body = False
        self._body_bounded = False
        self._pdu_deadline = float("inf")
        self._send_lock = threading.Lock()
        self._is_tls = isinstance(client_socket, ssl.SSLSocket)

    def send(self, bytestream: bytes) -> None:
        with self._send_lock:
            super().send(bytestream)

    def send_direct(self, data: bytes) -> bool:
        """Write already-framed PDUs from the association thread (see ris/dicom/find.py).

        The lock keeps them from interleaving with anything the DUL thread sends.
        """
        with self._send_lock:
            sock = self.socket
            if sock is None:
                return False
            try:
                sock.sendall(data)
                return True
            except OSError:
                self.event_queue.put("Evt17")  # transport connection closed
                return False

    # -- accepted / dropped -------------------------------------------------------------
    def mark_accepted(self) -> None:
        self.accepted = True
        self.associate_deadline = None

    def drop(self, *, reason: str) -> None:
        """Close a connection the policy has not accepted (deadline or pending limit).

        Called from the accept loop or the DUL thread. Only ``shutdown`` here: the DUL thread
        sees the end of the stream and closes the socket itself (closing the descriptor from
        another thread could hand its number to the next accepted connection meanwhile).
        """
        if self.drop_reason:
            return
        self.drop_reason = reason
        assoc = cast("RISAssociation", self.assoc)
        logger.info("closing pending connection from %s (%s)", assoc.requestor.address, reason)
        sock = self.socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not assoc.is_established:
            # The acceptor may be waiting for the A-ASSOCIATE-RQ: wake it up now.
            assoc.dul.to_user_queue.put(A_P_ABORT())

    # -- reading ------------------------------------------------------------------------
    def recv(self, nr_bytes: int) -> bytearray:
        # The DUL reads one PDU as recv(6) (header) followed by recv(length) (body).
        if self._reading_body:
            self._reading_body = False
            # Preallocate only a body the guard bounded (max_pdata 0 means "no limit").
            return self._read(nr_bytes, self._pdu_deadline, preallocate=self._body_bounded)
        self._pdu_deadline = self._new_deadline()
        data = self._read(nr_bytes, self._pdu_deadline, preallocate=nr_bytes == 6)
        if nr_bytes != 6 or len(data) != 6:
            return data
        pdu_type = data[0]
        length = int.from_bytes(data[2:6], "big")
        if pdu_type not in KNOWN_PDU_TYPES:
            return data  # the DUL raises Evt19 (unrecognised PDU) and reads no body
        limit = self.max_pdata if pdu_type == P_DATA_TF else max(self.max_pdata, MAX_CONTROL_PDU)
        if limit and length > limit:
            self._abort_oversized(pdu_type, length, limit)
            return bytearray()  # the DUL sees a short header: transport closed (Evt17)
        self._reading_body = length > 0
        self._body_bounded = bool(limit)
        return data

    def _new_deadline(self) -> float:
        deadline = time.monotonic() + self.pdu_read_timeout if self.pdu_read_timeout else float("inf")
        if self.associate_deadline is not None and not self.accepted:
            deadline = min(deadline, self.associate_deadline)
        return deadline

    def _read(self, nr_bytes: int, deadline: float, *, preallocate: bool) -> bytearray:
        """Read ``nr_bytes`` by ``deadline``; a closed connection returns what was read so far.

        A bounded length is read into one preallocated buffer (pynetdicom reads 4096 bytes per
        ``recv`` and appends each to a growing bytearray: ~16 reads and re-allocations per
        64 KiB P-DATA-TF); an unbounded one (``max_pdata`` 0) in chunks, never trusting the
        declared length for an allocation. Like pynetdicom, a short result makes the DUL
        signal "transport closed" (Evt17).
        """
        sock = self.socket
        if sock is None:
            return super().recv(nr_bytes)  # raises like pynetdicom (no socket)
        try:
            if preallocate:
                buffer = bytearray(nr_bytes)
                view = memoryview(buffer)
                nr_read = 0
                while nr_read < nr_bytes:
                    count = self._recv_into(sock, view[nr_read:], deadline)
                    if not count:
                        return buffer[:nr_read]
                    nr_read += count
                return buffer
            out = bytearray()
            chunk = bytearray(min(nr_bytes, 1 << 16))
            while len(out) < nr_bytes:
                view = memoryview(chunk)[: min(len(chunk), nr_bytes - len(out))]
                count = self._recv_into(sock, view, deadline)
                if not count:
                    return out
                out += view[:count]
            return out
        except _DeadlinePassed:
            self._deadline_passed()
            return bytearray()
        finally:
            if self._is_tls:
                with contextlib.suppress(OSError):
                    sock.settimeout(None)

    def _recv_into(self, sock: socket.socket, view: memoryview, deadline: float) -> int:
        if self._is_tls:
            # An SSLSocket takes no recv flags, and a readable socket may hold half a TLS
            # record: bound each read with the socket timeout instead.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _DeadlinePassed
            sock.settimeout(None if remaining == float("inf") else remaining)
            try:
                return sock.recv_into(view)
            except TimeoutError:
                raise _DeadlinePassed from None
        while True:
            try:
                return sock.recv_into(view, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except InterruptedError:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _DeadlinePassed
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
            poller.poll(None if remaining == float("inf") else max(1, int(remaining * 1000)))

    def _deadline_passed(self) -> None:
        assoc = cast("RISAssociation", self.assoc)
        if not self.accepted:
            pending_timeout = (
                self.associate_deadline is not None and time.monotonic() >= self.associate_deadline
            )
            self.drop(reason="associate_timeout" if pending_timeout else "pdu_read_timeout")
            return
        assoc.ris_abort_reason = "pdu_read_timeout"
        assoc.ris_abort_detail = {"timeout": self.pdu_read_timeout}
        logger.warning(
            "aborting association from %s: a PDU did not arrive within %.1f s",
            assoc.requestor.address,
            self.pdu_read_timeout,
        )
        self._send_abort(reason=0x00)
        self.close()

    def _send_abort(self, *, reason: int) -> None:
        pdu = A_ABORT_RQ()
        pdu.source = 0x02  # DICOM UL service-provider
        pdu.reason_diagnostic = reason
        sock = self.socket
        # Don't wait long for the send lock: the association thread may be blocked writing to
        # a peer that does not read; closing the socket afterwards unblocks it.
        if sock is not None and self._send_lock.acquire(timeout=1.0):
            try:
                sock.settimeout(1.0)
                with contextlib.suppress(OSError):
                    sock.sendall(pdu.encode())
            finally:
                self._send_lock.release()

    def _abort_oversized(self, pdu_type: int, length: int, limit: int) -> None:
        assoc = cast("RISAssociation", self.assoc)
        assoc.ris_abort_reason = "pdu_too_large"
        assoc.ris_abort_detail = {"pdu_type": pdu_type, "declared_length": length, "limit": limit}
        logger.warning(
            "aborting association from %s: PDU type 0x%02X declares %d bytes (limit %d)",
            assoc.requestor.address,
            pdu_type,
            length,
            limit,
        )
        self._send_abort(reason=0x06)  # invalid-PDU-parameter value
        self.close()
        if not assoc.is_established:
            # The acceptor is still waiting for the A-ASSOCIATE-RQ: wake it up now rather
            # than after the ACSE timeout.
            assoc.dul.to_user_queue.put(A_P_ABORT())


class RISDUL(DULServiceProvider):
    """pynetdicom's DUL, event-driven instead of polling every millisecond.

    pynetdicom's reactor sleeps 1 ms whenever it is idle (its own TODO says "make this event
    based"); under CPU contention each sleep stretches and a C-ECHO or C-FIND round trip pays
    it several times. Here the idle wait is a ``select`` on the peer's socket and a wake-up
    socket that ``send_pdu``/``kill_dul`` signal, and ``activity`` tells the association thread
    when the DUL has passed something on, so neither thread polls.
    """

    IDLE_WAIT = 0.05  # upper bound between timer checks (ARTIM) when nothing happens

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.activity = threading.Event()

    def _decode_pdu(self, bytestream: bytearray) -> tuple[Any, str]:
        """pynetdicom's decode, with P-DATA-TF fragments as views of the received buffer.

        pynetdicom copies every P-DATA-TF twice before the DIMSE layer sees it (``bytes()`` of
        the whole PDU, then a slice per PDV) and triggers EVT_DATA_RECV/EVT_PDU_RECV. When no
        handler is bound to either, a P-DATA-TF is split into PDVs whose values are
        ``memoryview`` slices of the buffer the PDU was read into (never reused: pynetdicom
        reads each PDU into a new bytearray); the DIMSE layer only slices and writes them.
        Malformed PDV items raise, as in pynetdicom (the DUL then signals Evt19).
        """
        if bytestream[0] != P_DATA_TF or not _accelerated(self.assoc) or self._pdu_recv_observed():
            return super()._decode_pdu(bytestream)
        view = memoryview(bytestream)
        end = len(view)
        offset = 6
        items: list[PresentationDataValueItem] = []
        while offset < end:
            if end - offset < 5:
                raise ValueError("truncated presentation data value item")
            item_length = int.from_bytes(view[offset : offset + 4], "big")
            stop = offset + 4 + item_length
            if item_length < 1 or stop > end:
                raise ValueError("presentation data value item runs past the PDU")
            item = PresentationDataValueItem()
            item.presentation_context_id = view[offset + 4]
            item.presentation_data_value = view[offset + 5 : stop]  # type: ignore[assignment]
            items.append(item)
            offset = stop
        pdu = P_DATA_TF_PDU()
        pdu.presentation_data_value_items = items
        return pdu, "Evt10"

    def _abort_on_failure(self) -> None:
        abort_pdu = A_ABORT_RQ()
        abort_pdu.source = 0x02
        abort_pdu.reason_diagnostic = 0x00
        with contextlib.suppress(Exception):
            self.socket.send(abort_pdu.encode())
        with contextlib.suppress(Exception):
            self.socket.close()
        assoc = cast("RISAssociation", self.assoc)
        if not assoc.ris_abort_reason:
            assoc.ris_abort_reason = "internal_error"
            assoc.ris_abort_detail = {}
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        self._kill_thread = True
        with contextlib.suppress(Exception):
            self.to_user_queue.put(A_P_ABORT())

    def _pdu_recv_observed(self) -> bool:
        get_handlers = self.assoc.get_handlers
        return bool(get_handlers(evt.EVT_DATA_RECV) or get_handlers(evt.EVT_PDU_RECV))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def send_pdu(self, primitive) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self._wake()
            if threading.current_thread() is not self:
                self.join()
            return True
        return False

    def _idle_wait(self) -> None:
        wrapped = self.socket.socket if self.socket is not None else None
        if isinstance(wrapped, ssl.SSLSocket) and wrapped.pending():
            return
        readers = [self._wake_r] if wrapped is None else [self._wake_r, wrapped]
        try:
            select.select(readers, [], [], self.IDLE_WAIT)
        except (OSError, ValueError):  # the peer's socket was closed meanwhile
            select.select([self._wake_r], [], [], 0.001)
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def run_reactor(self) -> None:
        # pynetdicom.dul.DULServiceProvider.run_reactor with the idle sleep replaced.
        if not _accelerated(self.assoc):
            try:
                super().run_reactor()
            finally:
                for sock in (self._wake_r, self._wake_w):
                    with contextlib.suppress(OSError):
                        sock.close()
            return
        self._idle_timer.start()
        try:
            while True:
                if not self.assoc._dul_ready.is_set():
                    self.assoc._dul_ready.set()
                if self._kill_thread:
                    break
                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")
                try:
                    if self._process_recv_primitive():
                        pass
                    elif self._is_transport_event():
                        self._idle_timer.restart()
                except Exception:
                    logger.exception("DUL failure; aborting the association")
                    self._abort_on_failure()
                    return
                try:
                    event = self.event_queue.get(block=False)
                except queue.Empty:
                    self._idle_wait()
                    continue
                try:
                    self.state_machine.do_action(event)
                except Exception:
                    # pynetdicom lets an exception in a state machine action end the DUL
                    # thread: the peer would get neither an answer nor an A-ABORT.
                    logger.exception("DUL state machine failed on %s; aborting the association", event)
                    self._abort_on_failure()
                    return
                self.activity.set()
        finally:
            self.activity.set()
            for sock in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    sock.close()


class RISAssociation(Association):
    """Acceptor association with DB hygiene, deferred TLS handshake and policy state."""

    ris_station: StationInfo | None = None
    ris_accelerated: bool = True  # RIS_DICOM_ACCELERATED (ris/dicom/patches.py)
    ris_abort_reason: str = ""
    ris_abort_detail: dict | None = None

    def ris_defer(self, func) -> None:
        """Run ``func`` once the association has ended (after the peer got its last PDU).

        Handlers use it for bookkeeping that need not delay the peer, e.g. the audit event of a
        worklist query, which would otherwise hold back the final C-FIND response by a commit.
        """
        self._ris_deferred.append(func)

    def run_reactor(self) -> None:
        self._ris_deferred: list = []
        close_old_connections()
        try:
            if self._tls_handshake():
                super().run_reactor()
        finally:
            sock = self.dul.socket
            front_door = getattr(sock, "front_door", None)
            if front_door is not None:
                front_door.release(sock)
            try:
                self._audit_abort()
                self._run_deferred()
            finally:
                # The thread ends with the association: close (or return to the pool) its connection.
                connections.close_all()

    def _run_deferred(self) -> None:
        for func in self._ris_deferred:
            try:
                func()
            except Exception:
                logger.exception("deferred association work failed")
        self._ris_deferred.clear()

    def _run_reactor(self) -> None:
        # pynetdicom.association.Association._run_reactor, waiting on the DUL's activity
        # instead of sleeping 1 ms per loop.
        activity: threading.Event | None = getattr(self.dul, "activity", None)
        if activity is None or not self.ris_accelerated:
            super()._run_reactor()
            return
        self._is_paused = False
        while not self._kill:
            activity.wait(0.01)
            activity.clear()
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))
                activity.set()  # look again at once: more may have arrived meanwhile
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                logger.info("network timeout reached; aborting the association")
                self.abort()
                self.kill()
                return

    def _serve_request(self, msg, context_id: int) -> None:
        # C-FIND goes through the node's FastFindServiceClass (pre-encoded identifiers, one
        # command encoding per request); everything else through pynetdicom's dispatch.
        if not self._sent_release and not msg.is_valid_request and msg.MessageIDBeingRespondedTo is None:
            # pynetdicom ignores a request without its required parameters (e.g. no Message
            # ID): the peer would wait for an answer that never comes.
            logger.warning(
                "aborting association from %s: invalid %s request", self.requestor.address, msg.msg_type
            )
            self.ris_abort_reason = "malformed_dimse"
            self.ris_abort_detail = {"error": f"invalid {msg.msg_type}"}
            sock = self.dul.socket
            if isinstance(sock, GuardedAssociationSocket):
                sock._send_abort(reason=0x06)
            self.abort()
            return
        context = self._accepted_cx.get(context_id)
        if context is None or self._sent_release or not isinstance(msg, C_FIND) or not msg.is_valid_request:
            super()._serve_request(msg, context_id)
            return
        try:
            # Keep a C-CANCEL that overtook its own C-FIND (pynetdicom drops it); drop the rest.
            self.dimse.cancel_req = {k: v for k, v in self.dimse.cancel_req.items() if k == msg.MessageID}
            self._is_paused = True
            FastFindServiceClass(self).SCP(msg, context)
            self._is_paused = False
            self.dimse.cancel_req = {}
        except Exception:
            logger.exception("C-FIND service failed; aborting the association")
            self.abort()

    def _tls_handshake(self) -> bool:
        sock = self.dul.socket.socket if self.dul.socket else None
        if not isinstance(sock, ssl.SSLSocket):
            return True
        try:
            guarded = cast(GuardedAssociationSocket, self.dul.socket)
            timeout = self.acse_timeout
            if guarded.associate_deadline is not None:
                remaining = max(0.001, guarded.associate_deadline - time.monotonic())
                timeout = remaining if timeout is None else min(timeout, remaining)
            sock.settimeout(timeout)
            sock.do_handshake()
            sock.settimeout(None)
            return True
        except (OSError, ValueError) as exc:
            address = self.requestor.address
            logger.warning("TLS handshake with %s failed: %s", address, type(exc).__name__)
            policy: AssociationPolicy | None = getattr(self._server, "ris_policy", None)
            if policy is not None:
                policy.record_rejection(
                    calling_ae="",
                    called_ae="",
                    address=address,
                    reason="tls_handshake_failed",
                    rsd=None,
                    extra={"error": type(exc).__name__, "message": str(exc)[:200]},
                )
            with contextlib.suppress(OSError):
                sock.close()
            self.dul.socket.socket = None
            self.dul.socket._is_connected = False
            return False

    def _audit_abort(self) -> None:
        if not self.ris_abort_reason:
            return
        policy: AssociationPolicy | None = getattr(self._server, "ris_policy", None)
        if policy is not None:
            policy.record_abort(self, reason=self.ris_abort_reason, detail=self.ris_abort_detail or {})


class RISRequestHandler(RequestHandler):
    def handle(self) -> None:
        assoc = self._create_association()
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        assoc.start()

    def _create_association(self) -> Association:
        # Mirrors pynetdicom.transport.RequestHandler._create_association with our classes.
        from .policy import PolicyACSE

        server = cast("RISAssociationServer", self.server)
        assoc = RISAssociation(self.ae, MODE_ACCEPTOR)
        assoc.ris_accelerated = server.accelerated
        assoc.dul = RISDUL(assoc)
        assoc.dimse = RISDIMSE(assoc)
        # The timeouts live on the DUL's timers: apply them to the new one.
        assoc.acse_timeout = assoc.acse_timeout
        assoc.network_timeout = assoc.network_timeout
        assoc._server = server
        assoc.acse = PolicyACSE(assoc)
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"

        sock = GuardedAssociationSocket(
            assoc,
            client_socket=self.request,
            max_pdata=self.ae.maximum_pdu_size,
            pdu_read_timeout=server.pdu_read_timeout,
            front_door=server.front_door,
        )
        assoc.set_socket(sock)
        if server.front_door is not None:
            sock.associate_deadline = server.front_door.admit(sock, self.client_address[0])

        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        # pynetdicom deep-copies the supported contexts per association: with every storage
        # SOP class x transfer syntax that is ~40 ms. Negotiation only reads them; share one list.
        assoc.acceptor.supported_contexts = server.contexts
        assoc.requestor.address_info = self.remote

        for event, handlers in server._handlers.items():
            if event.is_intervention and handlers:
                assoc.bind(event, *handlers)
            elif isinstance(event, evt.NotificationEvent):
                for handler, args in handlers:
                    assoc.bind(event, handler, args)
        return assoc


class RISAssociationServer(ThreadedAssociationServer):
    """Threaded server: TCP_NODELAY, TLS without handshake in the accept loop."""

    daemon_threads = True
    ris_policy: AssociationPolicy | None = None

    def __init__(
        self,
        *args: Any,
        policy: AssociationPolicy | None = None,
        front_door: FrontDoor | None = None,
        pdu_read_timeout: float = 0.0,
        accelerated: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("request_handler", RISRequestHandler)
        super().__init__(*args, **kwargs)
        self.ris_policy = policy
        self.accelerated = accelerated
        self.front_door = front_door
        self.pdu_read_timeout = pdu_read_timeout

    def service_actions(self) -> None:
        # Called by serve_forever() every poll interval: close pending connections whose
        # A-ASSOCIATE-RQ is overdue (a silent peer never reaches a read deadline).
        super().service_actions()
        if self.front_door is not None:
            self.front_door.reap()

    def process_request(self, request, client_address) -> None:
        # RISRequestHandler.handle() only builds the association and starts its thread (TLS
        # handshake included happens there), so run it in the accept loop instead of spawning
        # a third thread per association as ThreadingMixIn would.
        try:
            self.finish_request(request, client_address)
        except Exception:
            logger.exception("could not start an association for %s", client_address)
            self.shutdown_request(request)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client_socket, address = cast(socket.socket, self.socket).accept()
        with contextlib.suppress(OSError):  # e.g. a non-TCP socket
            client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            client_socket = self.ssl_context.wrap_socket(
                client_socket, server_side=True, do_handshake_on_connect=False
            )
        return client_socket, address
