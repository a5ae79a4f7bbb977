"""Storage SCP (PS3.4 Annex B) for the one DICOM node: ``contribute(ae)``.

The handler is a thin adapter: pynetdicom streams each dataset to a temporary file
(chunked receive), ``services.object_receive`` makes it durable and recorded, and only then
is 0x0000 answered. Refusals carry the status and a PHI-free Error Comment (0000,0902).
On release (or abort) one ingest task per study received on the association is enqueued.
"""

from __future__ import annotations

import logging

from django.db import connection
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES
from pynetdicom.presentation import AllStoragePresentationContexts

from ris.dicom.handlers import calling_ae, refresh_connections, status_dataset
from ris.dicom_metrics import instrument

from . import services, storage

logger = logging.getLogger(__name__)

# Accepted as received, never transcoded: every transfer syntax pynetdicom knows (Implicit,
# Explicit LE/BE, Deflated, JPEG family, JPEG-LS, JPEG 2000, RLE, MPEG-2/4, HEVC) plus
# HTJ2K and encapsulated uncompressed.
EXTRA_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.1.98",  # Encapsulated Uncompressed Explicit VR Little Endian
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
]
TRANSFER_SYNTAXES = list(dict.fromkeys([*ALL_TRANSFER_SYNTAXES, *EXTRA_TRANSFER_SYNTAXES]))

_ASSOC_ATTR = "_ris_imaging_received"

# C-STORE / STOW-RS failure statuses (PS3.4 Table B.2-1, PS3.18 Table 10.5.3-1).
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DB_UNAVAILABLE = 0xA701
STATUS_STORAGE_ERROR = 0xA702
STATUS_DATASET_MISMATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122

RECEIVE_STATUSES: tuple[tuple[type[services.ReceiveRefused], int], ...] = (
    (services.ObjectInvalid, STATUS_DATASET_MISMATCH),
    (services.ObjectUndecodable, STATUS_CANNOT_UNDERSTAND),
    (services.SOPClassNotStorage, STATUS_SOP_CLASS_NOT_SUPPORTED),
    (services.StorageOutOfSpace, STATUS_OUT_OF_RESOURCES),
    (services.StorageUnavailable, STATUS_STORAGE_ERROR),
    (services.RecordUnavailable, STATUS_DB_UNAVAILABLE),
)


def receive_status(exc: services.ReceiveRefused) -> int:
    """The DIMSE status (also the STOW-RS Failure Reason) for a refused object."""
    for kind, status in RECEIVE_STATUSES:
        if isinstance(exc, kind):
            return status
    return STATUS_CANNOT_UNDERSTAND


_release_connections = refresh_connections


def _healthy_connection() -> None:
    """Keep the association thread's connection across C-STOREs; drop it only if broken.

    (``close_old_connections`` would close it after every object with ``CONN_MAX_AGE=0``:
    a pool checkout and return per instance.) The association thread closes all its
    connections when the association ends (``ris.dicom.transport.RISAssociation``).
    """
    if connection.in_atomic_block or connection.connection is None:
        return
    if connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


def _status(code: int, comment: str = "") -> Dataset | int:
    return status_dataset(code, comment) if comment else code


_calling_ae = calling_ae


def handle_store(event) -> Dataset | int:
    """EVT_C_STORE: durable write and record, then answer."""
    _healthy_connection()
    try:
        req = event.request
        try:
            path = event.dataset_path
        except AttributeError:
            logger.error("C-STORE received without chunked receive enabled")
            return _status(0xA702, "Storage not ready")
        received_file = getattr(req, "_dataset_file", None)  # set by pynetdicom's chunked receive
        result = services.object_receive(
            path=path,
            calling_ae=_calling_ae(event),
            source="dimse",
            command_sop_class_uid=str(req.AffectedSOPClassUID or ""),
            command_sop_instance_uid=str(req.AffectedSOPInstanceUID or ""),
            received_file=received_file if isinstance(received_file, storage.ReceiveFile) else None,
        )
        received = getattr(event.assoc, _ASSOC_ATTR, None)
        if received is None:
            received = {}
            setattr(event.assoc, _ASSOC_ATTR, received)
        received[result.study_instance_uid] = received.get(result.study_instance_uid, 0) + 1
        return 0x0000
    except services.ReceiveRefused as exc:
        status = receive_status(exc)
        logger.warning("C-STORE from %s refused 0x%04X: %s", _calling_ae(event), status, exc)
        return _status(status, str(exc))
    except Exception:
        logger.exception("C-STORE handler failed")
        _healthy_connection()
        return _status(0xA7FF, "Internal error; retry later")


def handle_association_end(event) -> None:
    """EVT_RELEASED / EVT_ABORTED / EVT_CONN_CLOSE: enqueue ingest once per study."""
    received = getattr(event.assoc, _ASSOC_ATTR, None)
    if not received:
        return
    setattr(event.assoc, _ASSOC_ATTR, None)
    _release_connections()
    try:
        services.studies_enqueue(study_uids=list(received), source_ae=_calling_ae(event), counts=received)
    except Exception:
        # The rows are committed; the sweeper will enqueue them after the lease.
        logger.exception("could not enqueue ingest after association end")
    finally:
        _release_connections()


def contribute(ae) -> list:
    """Add Storage SCP contexts to the node's AE and return its handlers (docs/CONTRACTS.md)."""
    storage.install_receive_file()  # and chunked receive on (ris/dicom/patches.py)
    # The node is starting: nothing of this process is receiving yet, so a temporary file no
    # live process holds is what a crash left behind (issue 9 item 6).
    try:
        storage.tmp_cleanup_at_startup()
    except Exception:  # never keep the node from starting over housekeeping
        logger.exception("could not clean the storage root's temporary files")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
    return [
        (evt.EVT_C_STORE, instrument("C-STORE", handle_store)),
        (evt.EVT_RELEASED, handle_association_end),
        (evt.EVT_ABORTED, handle_association_end),
        (evt.EVT_CONN_CLOSE, handle_association_end),
    ]
