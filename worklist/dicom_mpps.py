"""MPPS SCP (PS3.4 Annex F): N-CREATE / N-SET, and N-GET of the Retrieve SOP Class.

Thin adapters: decode the request, call ``worklist.services``, map typed errors to DIMSE
statuses. The node (``ris/dicom``) imports this module and calls ``contribute(ae)``.
"""

from __future__ import annotations

import logging

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityPerformedProcedureStepRetrieve

from ris.dicom.handlers import calling_ae, status_dataset
from ris.dicom_metrics import instrument

from . import services
from .services import MPPSError

logger = logging.getLogger(__name__)

# DIMSE statuses of the MPPS SCP (PS3.7 Annex C, PS3.4 F.7.2), one per domain error.
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_OBJECT_INSTANCE = 0x0112
ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
# Error ID with 0x0110: "Performed Procedure Step Object may no longer be updated" (F.7.2.2.4.2).
NO_LONGER_UPDATABLE = 0xA710

MPPS_STATUSES: tuple[tuple[type[MPPSError], int, int | None], ...] = (
    (services.MPPSNotFound, NO_SUCH_OBJECT_INSTANCE, None),
    (services.MPPSDuplicate, DUPLICATE_SOP_INSTANCE, None),
    (services.MPPSNoLongerUpdatable, PROCESSING_FAILURE, NO_LONGER_UPDATABLE),
    (services.MPPSMissingAttribute, MISSING_ATTRIBUTE, None),
    (services.MPPSMissingValue, MISSING_ATTRIBUTE_VALUE, None),
    (services.MPPSInvalidAttribute, INVALID_ATTRIBUTE_VALUE, None),
    (services.MPPSValueOutOfRange, ATTRIBUTE_VALUE_OUT_OF_RANGE, None),
    (services.MPPSProcessingFailure, PROCESSING_FAILURE, None),
)


def mpps_status(exc: MPPSError) -> tuple[int, int | None]:
    """(DIMSE status, Error ID) for a refused MPPS request."""
    for kind, status, error_id in MPPS_STATUSES:
        if isinstance(exc, kind):
            return status, error_id
    return PROCESSING_FAILURE, None


MPPS_SOP_CLASS = str(ModalityPerformedProcedureStep)
MPPS_RETRIEVE_SOP_CLASS = str(ModalityPerformedProcedureStepRetrieve)


_calling_ae = calling_ae


def _failure(
    status: int, comment: str, tags: list[int] | None = None, error_id: int | None = None
) -> Dataset:
    return status_dataset(status, comment, tags=tags, error_id=error_id)


def _audit_refusal(event, operation: str, exc: MPPSError) -> None:
    """A refused MPPS request is evidence too (which modality sent what, and why it failed)."""
    try:
        from audit.services import audit_record

        req = event.request
        uid = (
            getattr(req, "AffectedSOPInstanceUID", None)
            or getattr(req, "RequestedSOPInstanceUID", None)
            or ""
        )
        audit_record(
            action=f"mpps.{operation.split('-')[1].lower()}",
            object_type="mpps",
            object_id=str(uid),
            source_ae=_calling_ae(event),
            outcome="failure",
            detail={"status": f"0x{mpps_status(exc)[0]:04X}", "reason": exc.message[:200]},
        )
    except Exception:
        logger.exception("MPPS refusal could not be audited")


def _run(event, operation: str, body):
    """Run ``body`` with a fresh DB connection; never let an exception reach pynetdicom."""
    close_old_connections()
    try:
        return body()
    except MPPSError as exc:
        status, error_id = mpps_status(exc)
        logger.info("MPPS %s from %s refused: 0x%04X %s", operation, _calling_ae(event), status, exc.message)
        _audit_refusal(event, operation, exc)
        return _failure(status, exc.message, exc.tags, error_id), None
    except Exception:
        logger.exception("MPPS %s from %s failed", operation, _calling_ae(event))
        return _failure(PROCESSING_FAILURE, "Processing failure"), None
    finally:
        close_old_connections()


def handle_n_create(event):
    req = event.request
    if str(req.AffectedSOPClassUID) != MPPS_SOP_CLASS:
        return _failure(0x0118, "No such SOP class"), None

    def body():
        attributes = event.attribute_list
        requested_uid = req.AffectedSOPInstanceUID
        mpps = services.mpps_create(
            attributes=attributes,
            calling_ae=_calling_ae(event),
            sop_instance_uid=str(requested_uid) if requested_uid else None,
        )
        reply = Dataset()
        if not requested_uid:
            # PS3.7 10.1.5.1.4: the SCP assigns the instance UID and returns it.
            reply.AffectedSOPInstanceUID = mpps.sop_instance_uid
        return 0x0000, reply

    return _run(event, "N-CREATE", body)


def handle_n_set(event):
    req = event.request
    if str(req.RequestedSOPClassUID) != MPPS_SOP_CLASS:
        return _failure(0x0118, "No such SOP class"), None

    def body():
        services.mpps_update(
            sop_instance_uid=str(req.RequestedSOPInstanceUID),
            modifications=event.modification_list,
            calling_ae=_calling_ae(event),
        )
        return 0x0000, Dataset()

    return _run(event, "N-SET", body)


def handle_n_get(event):
    req = event.request
    if str(req.RequestedSOPClassUID) not in (MPPS_RETRIEVE_SOP_CLASS, MPPS_SOP_CLASS):
        return _failure(0x0118, "No such SOP class"), None

    def body():
        requested = req.AttributeIdentifierList
        if requested is None:
            tags = []
        elif isinstance(requested, int):  # a single tag decodes as one BaseTag
            tags = [int(requested)]
        else:
            tags = [int(t) for t in requested]
        ds = services.mpps_get(
            sop_instance_uid=str(req.RequestedSOPInstanceUID), calling_ae=_calling_ae(event), tags=tags
        )
        return 0x0000, ds

    return _run(event, "N-GET", body)


def contribute(ae) -> list:
    """Add the MPPS presentation contexts to ``ae`` and return the handlers to bind."""
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.add_supported_context(ModalityPerformedProcedureStepRetrieve)
    return [
        (evt.EVT_N_CREATE, instrument("N-CREATE MPPS", handle_n_create)),
        (evt.EVT_N_SET, instrument("N-SET MPPS", handle_n_set)),
        (evt.EVT_N_GET, handle_n_get),
    ]
