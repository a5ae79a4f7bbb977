"""The node's front door: who may associate (PS3.8 7.1.1.9 / 9.3.4 A-ASSOCIATE-RJ).

Accepted: the called AE title is ours, the calling AE title is an active ``Station``, and
when the station has a host binding, the peer's address matches it (an IP address, a CIDR
network or a host name). Everything else is rejected with the matching result/source/reason
and recorded as one audit event (``dicom.association_rejected``).

The station found here travels with the association (``assoc.ris_station``) so that the
service handlers (MWL scope and character set, MPPS source) need no second lookup.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.pdu_primitives import A_ASSOCIATE

if TYPE_CHECKING:  # pragma: no cover
    from .transport import RISAssociation

logger = logging.getLogger(__name__)

# (result, source, reason/diag) of A-ASSOCIATE-RJ, PS3.8 Table 9-21.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognised
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE not recognised
REJECT_BUSY = (0x02, 0x03, 0x02)  # rejected-transient, service-provider (presentation), local limit exceeded


@dataclass(frozen=True)
class StationInfo:
    """The calling station as the DICOM services need it (no ORM object across threads)."""

    id: int
    ae_title: str
    name: str
    modality: str
    room: str
    host: str
    charset_profile: str
    worklist_scope: str


@dataclass(frozen=True)
class Decision:
    station: StationInfo | None = None
    reject: tuple[int, int, int] | None = None
    reason: str = ""


STATION_FIELDS = ("id", "ae_title", "name", "modality", "room", "host", "charset_profile", "worklist_scope")


StationLoader = Callable[[str], "StationInfo | None"]
_station_loader: StationLoader | None = None


def register_station_loader(loader: StationLoader) -> None:
    """Called by the app that owns stations (``scheduling.dicom.contribute``) at node start."""
    global _station_loader
    _station_loader = loader


def load_station(ae_title: str) -> StationInfo | None:
    """The registered station lookup; with none registered no calling AE is known."""
    if _station_loader is None:
        logger.warning("no station lookup registered (is scheduling.dicom in RIS_DICOM_SERVICES?)")
        return None
    return _station_loader(ae_title)


_HOST_CACHE: dict[str, tuple[float, frozenset[str]]] = {}
_HOST_CACHE_LOCK = threading.Lock()
_HOST_CACHE_SECONDS = 60.0


def _resolve(host: str) -> frozenset[str]:
    now = time.monotonic()
    with _HOST_CACHE_LOCK:
        hit = _HOST_CACHE.get(host)
        if hit and now - hit[0] < _HOST_CACHE_SECONDS:
            return hit[1]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        addresses = frozenset(str(ipaddress.ip_address(info[4][0])) for info in infos)
    except (OSError, ValueError):
        addresses = frozenset()
    with _HOST_CACHE_LOCK:
        _HOST_CACHE[host] = (now, addresses)
    return addresses


def host_matches(binding: str, address: str) -> bool:
    """Whether the peer ``address`` satisfies a station's host binding (empty = any)."""
    binding = (binding or "").strip()
    if not binding:
        return True
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    if peer.version == 6 and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    for item in binding.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if "/" in item:
                if peer in ipaddress.ip_network(item, strict=False):
                    return True
                continue
            if peer == ipaddress.ip_address(item):
                return True
            continue
        except ValueError:
            pass  # a host name
        if str(peer) in _resolve(item):
            return True
    return False


class AssociationPolicy:
    """Decides on association requests and records rejections in the audit trail."""

    def __init__(self, *, ae_title: str, station_loader=load_station) -> None:
        self.ae_title = ae_title
        self.station_loader = station_loader

    def decide(
        self,
        *,
        calling_ae: str,
        called_ae: str,
        address: str,
    ) -> Decision:
        if called_ae.strip() != self.ae_title:
            return Decision(reject=REJECT_CALLED_AE, reason="called_ae_not_recognized")
        station = self.station_loader(calling_ae.strip())
        if station is None:
            return Decision(reject=REJECT_CALLING_AE, reason="calling_ae_not_recognized")
        if not host_matches(station.host, address):
            return Decision(reject=REJECT_CALLING_AE, reason="host_not_allowed")
        return Decision(station=station)

    def record_rejection(
        self,
        *,
        calling_ae: str,
        called_ae: str,
        address: str,
        reason: str,
        rsd: tuple[int, int, int] | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        from audit.models import Outcome
        from audit.services import audit_record

        detail: dict[str, Any] = {"reason": reason, "address": address, "called_ae": called_ae}
        if rsd:
            detail.update({"result": rsd[0], "source": rsd[1], "diagnostic": rsd[2]})
        detail.update(extra or {})
        logger.warning(
            "association rejected: calling=%s called=%s from %s (%s)", calling_ae, called_ae, address, reason
        )
        try:
            audit_record(
                action="dicom.association_rejected",
                object_type="dicom_association",
                object_id=calling_ae,
                outcome=Outcome.DENIED,
                source_ae=calling_ae,
                source_ip=_ip_or_none(address),
                detail=detail,
            )
        except Exception:
            logger.exception("could not record the rejected association in the audit trail")

    def record_abort(self, assoc: RISAssociation, *, reason: str, detail: dict[str, Any]) -> None:
        from audit.models import Outcome
        from audit.services import audit_record

        calling = assoc.requestor.ae_title if assoc.requestor.primitive else ""
        try:
            audit_record(
                action="dicom.association_aborted",
                object_type="dicom_association",
                object_id=calling,
                outcome=Outcome.DENIED,
                source_ae=calling,
                source_ip=_ip_or_none(assoc.requestor.address),
                detail={"reason": reason, **detail},
            )
        except Exception:
            logger.exception("could not record the aborted association in the audit trail")


def _ip_or_none(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class PolicyACSE(ACSE):
    """ACSE that applies ``AssociationPolicy`` before pynetdicom's own negotiation."""

    def _negotiate_as_acceptor(self) -> None:
        assoc: RISAssociation = self.assoc  # type: ignore[assignment]
        rq = self.requestor.primitive
        if not isinstance(rq, A_ASSOCIATE):
            # Aborted (e.g. oversized PDU) before a request arrived.
            assoc.kill()
            return
        policy: AssociationPolicy = assoc._server.ris_policy
        calling = rq.calling_ae_title or ""
        called = rq.called_ae_title or ""
        self.requestor.ae_title = calling
        address = assoc.requestor.address
        try:
            decision = policy.decide(calling_ae=calling, called_ae=called, address=address)
        except Exception:
            logger.exception("association policy failed; rejecting transiently")
            decision = Decision(reject=(0x02, 0x02, 0x01), reason="policy_error")
        sock = assoc.dul.socket
        front_door = getattr(sock, "front_door", None)
        if not decision.reject and front_door is not None:
            # Only accepted associations count against RIS_DICOM_MAX_ASSOCIATIONS (frontdoor.py).
            if getattr(sock, "drop_reason", ""):
                assoc.kill()  # closed meanwhile (deadline or pending limit): nobody to answer
                return
            if not front_door.try_accept(sock):
                decision = Decision(reject=REJECT_BUSY, reason="too_many_associations")
            else:
                sock.mark_accepted()
        if decision.reject:
            # Audit first: once the peer has the A-ASSOCIATE-RJ the event is already on record.
            policy.record_rejection(
                calling_ae=calling,
                called_ae=called,
                address=address,
                reason=decision.reason,
                rsd=decision.reject,
            )
            self.send_reject(*decision.reject)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        assoc.ris_station = decision.station
        super()._negotiate_as_acceptor()
