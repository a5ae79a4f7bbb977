"""Every place the node reaches into pynetdicom/pydicom, in one list, applied once at node start.

Two kinds (docs/dicom.md "pynetdicom internals" says, for each, what upstream hook would let
the project drop it):

* **process-wide replacements** (assignments into library modules and ``_config``): made only
  here, by :func:`apply` (called by ``DicomNode.build_ae``, never at import) and
  :func:`use_receive_file` (called by the storage service module's ``contribute``);
* **subclass overrides** in ``transport.py``, ``find.py`` and ``policy.py``: the node builds its
  own associations from them. Each overridden or copied upstream method is listed in
  :data:`PATCHES` with the sha256 of its source when the override was written;
  ``tests/dicom/test_patches.py`` fails when an upgraded pynetdicom changes any of them, so the
  override is re-read against the new upstream code before it ships.

``RIS_DICOM_ACCELERATED`` (default on) switches the paths that exist only for speed (marked
``accelerated=True``); with it off the node runs pynetdicom's own code there and keeps only the
guards (PDU length and read deadlines, the association policy, malformed-message answers).
``make test`` runs the DICOM tests both ways.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Patch:
    upstream: str  # dotted path of the pynetdicom/pydicom object
    kind: str  # "copied" (whole body copied and changed), "overridden", "replaced" (module attribute)
    ours: str  # where our version lives
    sha256: str  # of inspect.getsource(upstream) when ours was written
    accelerated: bool  # only for speed: off with RIS_DICOM_ACCELERATED=false
    hook: str  # what upstream hook would let us drop it


PATCHES: tuple[Patch, ...] = (
    # -- the DUL (ris/dicom/transport.py RISDUL) ---------------------------------------------
    Patch(
        "pynetdicom.dul.DULServiceProvider.run_reactor",
        "copied",
        "ris.dicom.transport.RISDUL.run_reactor",
        "e3a10eb3a0931e4854af33b9496e92d9679522aca26b0e04da8967559b9e2803",
        True,
        "an event-driven reactor (upstream TODO 'make this event based'): select on the socket and "
        "a wake-up pipe instead of sleep(0.001)",
    ),
    Patch(
        "pynetdicom.dul.DULServiceProvider._decode_pdu",
        "overridden",
        "ris.dicom.transport.RISDUL._decode_pdu",
        "fc71dd1bf853e1ce79d29b11731a26a4f6ee9eb697026ad611f8fc91f8aa69c9",
        True,
        "P-DATA-TF PDVs as memoryviews of the receive buffer (no bytes() copies)",
    ),
    Patch(
        "pynetdicom.dul.DULServiceProvider.send_pdu",
        "overridden",
        "ris.dicom.transport.RISDUL.send_pdu",
        "7cbce5da8594124e9e70c790a68df640d21df11af4220783e752bc607de8dde6",
        True,
        "same event-driven reactor (wake the DUL when something is queued)",
    ),
    Patch(
        "pynetdicom.dul.DULServiceProvider.kill_dul",
        "overridden",
        "ris.dicom.transport.RISDUL.kill_dul",
        "5ceccf8dd01c2072c377d18bb1be284941a345bd40f03bd1e03a864ab0817842",
        True,
        "same event-driven reactor",
    ),
    Patch(
        "pynetdicom.dul.DULServiceProvider.stop_dul",
        "overridden",
        "ris.dicom.transport.RISDUL.stop_dul",
        "28a7e0be126e7b306369cc1b131daec8e907d21d0f5692930133b6599b8c6e5f",
        True,
        "same event-driven reactor",
    ),
    # -- the association (RISAssociation, RISRequestHandler) ----------------------------------
    Patch(
        "pynetdicom.association.Association._run_reactor",
        "copied",
        "ris.dicom.transport.RISAssociation._run_reactor",
        "f28838c5559e462a563750cfc9f3790027f4bb7e2223baf42c9f5d682c359dee",
        True,
        "an 'activity' event from the DUL instead of sleep(0.001) polling",
    ),
    Patch(
        "pynetdicom.association.Association.run_reactor",
        "overridden",
        "ris.dicom.transport.RISAssociation.run_reactor",
        "ed8bbbe3b3d6ddaee3e8673ba25b2ab2a4c45f25bc1d8ae7b48ebafd09499e6d",
        False,
        "EVT_ASSOCIATION_THREAD_START/END events (per-thread DB hygiene, deferred audit, "
        "front-door bookkeeping) and a TLS-handshake hook with a deadline",
    ),
    Patch(
        "pynetdicom.association.Association._serve_request",
        "overridden",
        "ris.dicom.transport.RISAssociation._serve_request",
        "2f24c1759cdf6c8c433094f2a8dd8144f76f5547f03daed7b94e0f78bc12f877",
        False,
        "a pluggable C-FIND service class per AE, and an option to abort on invalid requests "
        "(upstream ignores them: the peer waits for ever)",
    ),
    Patch(
        "pynetdicom.transport.RequestHandler._create_association",
        "copied",
        "ris.dicom.transport.RISRequestHandler._create_association",
        "05c8d12b79863cdbdb901ce37187b7030a0434c5cd89d219ed0bedbda679a61e",
        False,
        "factories for the Association/DUL/DIMSE/ACSE/socket classes on AE or server, and no "
        "deep copy of the supported contexts per association",
    ),
    Patch(
        "pynetdicom.transport.RequestHandler.handle",
        "overridden",
        "ris.dicom.transport.RISRequestHandler.handle",
        "034823fb4df3a87467bd0d45193f0d457fcf59c87fda8e97b2edfb89426f76dd",
        False,
        "same factories",
    ),
    # -- the socket (GuardedAssociationSocket) ---------------------------------------------------
    Patch(
        "pynetdicom.transport.AssociationSocket.recv",
        "overridden",
        "ris.dicom.transport.GuardedAssociationSocket.recv",
        "6bc20a33b1b7cfe76d4ad4407ca242563bc6206fde4b4e1cf7a2fbb1f11d621d",
        False,
        "a maximum PDU length checked against the header before the body is read, and a read "
        "deadline per PDU (AE.pdu_read_timeout)",
    ),
    Patch(
        "pynetdicom.transport.AssociationSocket.send",
        "overridden",
        "ris.dicom.transport.GuardedAssociationSocket.send",
        "1ea8158c0b51facac667a0340b93f495b947fdc4f55663946fb30d456c804e09",
        False,
        "a send lock so that another thread may write framed PDUs",
    ),
    # -- the server (RISAssociationServer) ---------------------------------------------------
    Patch(
        "pynetdicom.transport.AssociationServer.get_request",
        "overridden",
        "ris.dicom.transport.RISAssociationServer.get_request",
        "925a4f3a3042f6e4b944505d06dc19c41e10ff7dec5385c794d62d31fd000300",
        False,
        "TCP_NODELAY on accepted sockets and TLS wrapping with do_handshake_on_connect=False",
    ),
    Patch(
        "pynetdicom.transport.AssociationServer.service_actions",
        "overridden",
        "ris.dicom.transport.RISAssociationServer.service_actions",
        "0a0853a3615ac7c5260a57dcdc8b0e9908d655919b7d64737c89534869758873",
        False,
        "an A-ASSOCIATE-RQ deadline and per-address limits for connections not yet accepted",
    ),
    Patch(
        "pynetdicom.transport.AssociationServer.process_request",
        "overridden",
        "ris.dicom.transport.RISAssociationServer.process_request",
        "4fa44ac5b54b4498035cc1d8b32e1c3035ffee46a054fb2abffad634997b7f18",
        False,
        "no extra thread per connection (the handler only starts the association thread)",
    ),
    # -- DIMSE (RISDIMSE) ------------------------------------------------------------------------
    Patch(
        "pynetdicom.dimse.DIMSEServiceProvider.receive_primitive",
        "copied",
        "ris.dicom.transport.RISDIMSE.receive_primitive",
        "5f99c86b14a15cefa87d914cda3591ec4d636d4c53a982e945ec9c1828c6e43f",
        False,
        "a status or an A-ABORT with a reason for every message that cannot be decoded, and a "
        "hook to validate a C-STORE command set before its data set is received",
    ),
    Patch(
        "pynetdicom.dimse.DIMSEServiceProvider.send_msg",
        "overridden",
        "ris.dicom.transport.RISDIMSE.send_msg",
        "a839cf2fb46976d9da29cf06fea41c04416b38d14fab612af12e5d869bd5b3f0",
        True,
        "a cheaper encoder for fixed command sets (C-STORE-RSP without a data set)",
    ),
    Patch(
        "pynetdicom.dimse_messages.DIMSEMessage.decode_msg",
        "overridden",
        "ris.dicom.patches (create_file_meta/write_file_meta_info/NamedTemporaryFile used by it)",
        "f51c777e841a76beeaadfe3015bd4f4a68387229a72f13f3a3b7846d01d72284",
        False,
        "a file factory and a File Meta writer on the AE for chunked C-STORE receives",
    ),
    # -- ACSE (ris/dicom/policy.py PolicyACSE) -----------------------------------------------
    Patch(
        "pynetdicom.acse.ACSE._negotiate_as_acceptor",
        "overridden",
        "ris.dicom.policy.PolicyACSE._negotiate_as_acceptor",
        "fffd360957c42a8ed89284cf1b1b734527c9be60253950777a0330c0f2be692e",
        False,
        "an association-policy callback (EVT_REQUESTED that may reject with result/source/reason) "
        "and a count of accepted associations only for maximum_associations",
    ),
    # -- C-FIND (ris/dicom/find.py FastFindServiceClass) ---------------------------------------
    Patch(
        "pynetdicom.service_class.ServiceClass._c_find_scp",
        "copied",
        "ris.dicom.find.FastFindServiceClass._c_find_scp",
        "da242b908ef4848ceaec8937680dfe9d23705301f6bad99de6dd64786cd9a7ca",
        False,
        "handlers yielding pre-encoded identifiers (bytes) and Warning as a final status",
    ),
    # -- module attributes replaced by apply() / use_receive_file() -----------------------------
    Patch(
        "pynetdicom.dsutils.create_file_meta",
        "replaced",
        "ris.dicom.transport._fast_create_file_meta (as pynetdicom.dimse_messages.create_file_meta)",
        "035ed415f5aeea15543cca3b0b7b2b6d5a3189bc807a0211f5c633bb356ab9e3",
        True,
        "a File Meta writer on the AE (see decode_msg)",
    ),
    Patch(
        "pydicom.filewriter.write_file_meta_info",
        "replaced",
        "ris.dicom.transport._fast_write_file_meta_info (as pynetdicom.dimse_messages.write_file_meta_info)",
        "0568f3155349513bbef9976e179831f8aa76591e0adaa36566a1a17947c667e5",
        True,
        "same",
    ),
)

_lock = threading.Lock()
_applied: bool | None = None  # the accelerated flag apply() last installed
_originals: dict[str, object] = {}


def upstream_object(dotted: str):
    """The object at ``dotted`` (module path, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def source_hash(dotted: str) -> str:
    return hashlib.sha256(inspect.getsource(upstream_object(dotted)).encode()).hexdigest()


def is_accelerated() -> bool:
    """Whether the accelerated paths are on (the flag the node applied; settings before that)."""
    if _applied is not None:
        return _applied
    from django.conf import settings

    return bool(getattr(settings, "RIS_DICOM_ACCELERATED", True))


def apply(*, accelerated: bool) -> None:
    """Install the process-wide changes (idempotent; the last call's ``accelerated`` wins)."""
    global _applied
    from pydicom import config as pydicom_config
    from pynetdicom import _config, dimse_messages

    from . import transport

    with _lock:
        # Never log identifiers or values (patient data); no per-PDU debug handlers.
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
            # The "standard" handlers format every PDU and DIMSE message even when nothing logs them.
            _config.LOG_HANDLER_LEVEL = "none"
        # pydicom's value validation logs the offending value (a patient's name, an ID) at
        # WARNING; the node validates what it needs itself and logs no patient data.
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

        _originals.setdefault("create_file_meta", dimse_messages.create_file_meta)
        _originals.setdefault("write_file_meta_info", dimse_messages.write_file_meta_info)
        if accelerated:
            dimse_messages.create_file_meta = transport._fast_create_file_meta  # type: ignore[assignment]
            dimse_messages.write_file_meta_info = transport._fast_write_file_meta_info  # type: ignore[assignment]
        else:
            dimse_messages.create_file_meta = _originals["create_file_meta"]  # type: ignore[assignment]
            dimse_messages.write_file_meta_info = _originals["write_file_meta_info"]  # type: ignore[assignment]
        if _applied is None or _applied != accelerated:
            logger.info("pynetdicom patches applied (accelerated paths %s)", "on" if accelerated else "off")
        _applied = accelerated


def use_receive_file(factory) -> None:
    """Chunked C-STORE receives write to ``factory`` files (``imaging.storage.ReceiveFile``).

    pynetdicom creates them with ``NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")``
    in ``DIMSEMessage.decode_msg``; the factory takes the same arguments.
    """
    from pynetdicom import _config, dimse_messages

    with _lock:
        _config.STORE_RECV_CHUNKED_DATASET = True
        dimse_messages.NamedTemporaryFile = factory  # type: ignore[assignment]
