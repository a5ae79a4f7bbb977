"""Modality Worklist Information Model – FIND SCP (PS3.4 Annex K, IHE RAD-5).

The handler is a thin adapter: identifier → ``parse_identifier`` (pure) → ``mwl_query`` (one
indexed SELECT) → one pending response per SPS, encoded in the calling station's character
set profile. ``event.is_cancelled`` is checked before every response (C-CANCEL → 0xFE00).

Statuses: 0xFF00 pending; 0xFF01 pending when the request has keys we do not support;
0xB001 final warning when the result cap cut the list; 0xA900 for a malformed identifier;
0xC001 (unable to process) for anything else — no exception ever escapes to pynetdicom.
One audit event per query (``worklist.mwl_query``) records who asked and how many SPS
were disclosed.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.sop_class import ModalityWorklistInformationFind

from ris.dicom.handlers import calling_ae, peer_address, refresh_connections, status_dataset
from ris.dicom_metrics import instrument

from .mwl import IdentifierError, parse_identifier
from .mwl_response import UTF8, ResponseEncoder
from .selectors import mwl_query

logger = logging.getLogger(__name__)

MWL_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]

PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # one or more optional keys not supported
CANCEL = 0xFE00
LIMIT_REACHED = 0xB001  # matching reached response limit
IDENTIFIER_ERROR = 0xA900
UNABLE_TO_PROCESS = 0xC001


_status = status_dataset
_calling_ae = calling_ae


def _audit(
    *, calling_ae: str, address: str, matches: int, truncated: bool, keys: list[str], outcome="success"
):
    from audit.services import audit_record

    audit_record(
        action="worklist.mwl_query",
        object_type="mwl",
        object_id=calling_ae,
        source_ae=calling_ae,
        source_ip=address or None,
        outcome=outcome,
        detail={"matches": matches, "truncated": truncated, "matching_keys": keys},
    )


_refresh_connection = refresh_connections


def handle_find(event):
    """EVT_C_FIND handler (a generator, as pynetdicom expects)."""
    _refresh_connection()
    started = time.perf_counter()
    calling_ae = _calling_ae(event)
    station = getattr(event.assoc, "ris_station", None)
    address = peer_address(event)
    try:
        try:
            query = parse_identifier(event.identifier)
        except IdentifierError as exc:
            logger.info("MWL C-FIND from %s: malformed identifier (%s)", calling_ae, exc)
            yield _status(IDENTIFIER_ERROR, str(exc)), None
            return
        except Exception as exc:  # pydicom could not decode the identifier at all
            logger.info("MWL C-FIND from %s: undecodable identifier (%s)", calling_ae, type(exc).__name__)
            yield _status(IDENTIFIER_ERROR, "Identifier cannot be decoded"), None
            return

        result = mwl_query(query=query, calling_station=station)
        audit = partial(
            _audit,
            calling_ae=calling_ae,
            address=address,
            matches=len(result.rows),
            truncated=result.truncated,
            keys=sorted({c.field for c in query.criteria}),
        )
        defer = getattr(event.assoc, "ris_defer", None)
        if callable(defer):
            defer(audit)  # written when the association ends, without delaying the responses
        else:
            audit()
        transfer_syntax = event.context.transfer_syntax
        encoder = ResponseEncoder(
            query,
            charset_profile=station.charset_profile if station is not None else UTF8,
            explicit_vr=transfer_syntax != ImplicitVRLittleEndian,
        )
        pending = PENDING_WARNING if query.unsupported else PENDING
        for row in result.rows:
            if event.is_cancelled:
                logger.info("MWL C-FIND from %s cancelled", calling_ae)
                yield CANCEL, None
                return
            yield pending, encoder.encode(row)
        logger.info(
            "MWL C-FIND from %s: %d matches%s in %.1f ms",
            calling_ae,
            len(result.rows),
            " (cap reached)" if result.truncated else "",
            (time.perf_counter() - started) * 1000,
        )
        if result.truncated:
            yield _status(LIMIT_REACHED, f"More than {result.cap} matches; refine the query"), None
    except Exception:
        logger.exception("MWL C-FIND from %s failed", calling_ae)
        yield _status(UNABLE_TO_PROCESS, "Processing failure"), None
    finally:
        _refresh_connection()


def contribute(ae) -> list:
    """Add the MWL presentation context to ``ae`` and return the handler to bind."""
    ae.add_supported_context(ModalityWorklistInformationFind, MWL_TRANSFER_SYNTAXES)
    return [(evt.EVT_C_FIND, instrument("C-FIND MWL", handle_find))]
