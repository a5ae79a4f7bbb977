"""What every DICOM service handler needs (worklist.dicom_mwl, worklist.dicom_mpps, imaging.dicom).

Handlers are thin adapters: they read the request, call a service with plain values, and map
the service's typed errors to DIMSE statuses. The pieces they share live here, once.
"""

from __future__ import annotations

from django.db import close_old_connections, connection
from pydicom.dataset import Dataset


def calling_ae(event) -> str:
    """The calling AE title of the event's association ("" when there is none)."""
    try:
        ae = event.assoc.requestor.ae_title
    except AttributeError:
        return ""
    return (ae.decode(errors="replace") if isinstance(ae, bytes) else str(ae)).strip()


def peer_address(event) -> str:
    try:
        return event.assoc.requestor.address
    except (AttributeError, ValueError):
        return ""


def status_dataset(
    code: int, comment: str = "", *, tags: list[int] | None = None, error_id: int | None = None
) -> Dataset:
    """A status with Error Comment (0000,0902, LO: 64 characters at most), Error ID (0000,0903)
    and Attribute Identifier List (0000,1005) when given (PS3.7 Annex C)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    if error_id is not None:
        ds.ErrorID = error_id
    if tags:
        ds.AttributeIdentifierList = tags
    return ds


def refresh_connections() -> None:
    """Drop stale database connections before and after a request.

    Never inside a transaction (tests call handlers inside one); the association thread
    closes all its connections when the association ends (ris.dicom.transport).
    """
    if not connection.in_atomic_block:
        close_old_connections()
