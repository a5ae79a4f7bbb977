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

from ris.dicom_metrics import instrument

from . import services
from .services import PROCESSING_FAILURE, MPPSError

logger = logging.getLogger(__name__)

MPPS_SOP_CLASS = str(ModalityPerformedProcedureStep)
MPPS_RETRIEVE_SOP_CLASS = str(ModalityPerformedProcedureStepRetrieve)


def _calling_ae(event) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except AttributeError:
        return ""


def _failure(
    status: int, comment: str, tags: list[int] | None = None, error_id: int | None = None
) -> Dataset:
    ds = Dataset()
    ds.Status = status
    # Error Comment (0000,0902) is LO: 64 characters at most.
    ds.ErrorComment = comment[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    if tags:
        ds.AttributeIdentifierList = tags
    return ds


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
            detail={"status": f"0x{exc.status:04X}", "reason": exc.message[:200]},
        )
    except Exception:
        logger.exception("MPPS refusal could not be audited")


def _run(event, operation: str, body):
    """Run ``body`` with a fresh DB connection; never let an exception reach pynetdicom."""
    close_old_connections()
    try:
        return body()
    except MPPSError as exc:
        logger.info(
            "MPPS %s from %s refused: 0x%04X %s", operation, _calling_ae(event), exc.status, exc.message
        )
        _audit_refusal(event, operation, exc)
        return _failure(exc.status, exc.message, exc.tags, exc.error_id), None
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
