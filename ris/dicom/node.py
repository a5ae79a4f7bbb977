"""Assembly of the one DICOM Application Entity (DESIGN.md §5, CONTRACTS.md "DICOM node").

The node owns Verification, the association policy, timeouts, limits and TLS. Every other
service comes from the modules named in ``settings.RIS_DICOM_SERVICES``: each module's
``contribute(ae)`` adds its presentation contexts to ``ae`` and returns its handlers as
``[(event, handler), ...]`` (or ``(event, handler, args)``). Modules that do not exist yet
are skipped. When several modules return a handler for the same intervention event, the
node dispatches by the SOP class of the presentation context the request arrived on.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from . import patches
from .frontdoor import FrontDoor
from .policy import AssociationPolicy
from .transport import RISAssociationServer

logger = logging.getLogger(__name__)

PYNETDICOM_MAXIMUM_ASSOCIATIONS = 1_000_000
VERIFICATION_TRANSFER_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]


def build_ssl_context(*, cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Server context for DICOM TLS: TLS >= 1.2, client certificate required, trust = ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certfile=cert, keyfile=key or None)
    if not ca:
        raise ValueError("RIS_DICOM_TLS_CA is required: peers are authenticated by their certificate")
    context.load_verify_locations(cafile=ca)
    return context


def enable_db_pool(*, max_size: int) -> bool:
    """Pool PostgreSQL connections across association threads (psycopg_pool via Django).

    Every association runs in a new thread; without a pool each one opens a PostgreSQL
    backend (~5-20 ms) whose catalog caches are cold, so planning the worklist query costs
    ~6 ms instead of ~0.7 ms. Only the DICOM node process turns this on.
    """
    from django.db import connections

    config = connections.settings["default"]
    if not config["ENGINE"].endswith("postgresql"):
        return False
    if importlib.util.find_spec("psycopg_pool") is None:
        logger.warning("psycopg_pool is not installed: one database connection per association")
        return False
    options = config.setdefault("OPTIONS", {})
    if not options.get("pool"):
        options["pool"] = {"min_size": 2, "max_size": max_size, "timeout": 10}
    return True


@dataclass
class ServiceModule:
    name: str
    sop_classes: frozenset[str]
    handlers: list[tuple[Any, ...]]


def load_service_modules(ae: AE, names: Iterable[str]) -> list[ServiceModule]:
    modules: list[ServiceModule] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                logger.info("DICOM service module %s not present; skipped", name)
                continue
            raise
        before = {cx.abstract_syntax for cx in ae.supported_contexts}
        handlers = list(module.contribute(ae) or [])
        added = frozenset(str(cx.abstract_syntax) for cx in ae.supported_contexts) - before
        modules.append(ServiceModule(name=name, sop_classes=added, handlers=handlers))
        logger.info("DICOM service module %s: %d SOP classes", name, len(added))
    return modules


def _dispatcher(event_type, routes: list[tuple[frozenset[str], Callable, list | None]]) -> Callable:
    """One intervention handler that routes by the request's abstract syntax."""

    def dispatch(event, *args):
        abstract_syntax = str(event.context.abstract_syntax) if event.context else ""
        for sop_classes, handler, extra in routes:
            if abstract_syntax in sop_classes:
                return handler(event, *(extra or []))
        _sop, handler, extra = routes[0]
        return handler(event, *(extra or []))

    dispatch.__name__ = f"dispatch_{event_type.name}"
    return dispatch


def collect_handlers(modules: Sequence[ServiceModule]) -> list[tuple[Any, ...]]:
    interventions: dict[Any, list[tuple[frozenset[str], Callable, list | None]]] = {}
    bound: list[tuple[Any, ...]] = []
    for module in modules:
        for item in module.handlers:
            event_type, handler, *rest = item
            extra = rest[0] if rest else None
            if event_type.is_intervention:
                interventions.setdefault(event_type, []).append((module.sop_classes, handler, extra))
            else:
                bound.append((event_type, handler, extra) if extra else (event_type, handler))
    for event_type, routes in interventions.items():
        if len(routes) == 1:
            _sop, handler, extra = routes[0]
            bound.append((event_type, handler, extra) if extra else (event_type, handler))
        else:
            bound.append((event_type, _dispatcher(event_type, routes)))
    return bound


@dataclass
class DicomNode:
    """The running node: ``start()`` (non-blocking), ``stop()``; ``host``/``port``/``ae_title``.

    ``port=0`` binds a free port (tests). ``tls_port`` adds a TLS listener (``ssl_context``
    or the certificate settings); ``plain=False`` leaves only the TLS one.
    """

    ae_title: str = ""
    host: str = ""
    port: int | None = None
    services: Sequence[str] | None = None
    ssl_context: ssl.SSLContext | None = None
    tls_port: int | None = None
    plain: bool = True
    acse_timeout: float | None = None
    dimse_timeout: float | None = None
    network_timeout: float | None = None
    maximum_associations: int | None = None
    maximum_pdu_size: int | None = None
    pdu_read_timeout: float | None = None
    accelerated: bool | None = None
    associate_timeout: float | None = None
    max_pending_per_address: int | None = None
    max_pending: int | None = None
    front_door: FrontDoor | None = field(default=None, init=False)
    ae: AE | None = field(default=None, init=False)
    servers: list[RISAssociationServer] = field(default_factory=list, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        s = settings
        self.ae_title = self.ae_title or s.RIS_DICOM_AE_TITLE
        self.host = self.host or s.RIS_DICOM_BIND_ADDRESS
        self.port = s.RIS_DICOM_PORT if self.port is None else self.port
        self.services = list(s.RIS_DICOM_SERVICES if self.services is None else self.services)
        self.acse_timeout = s.RIS_DICOM_ACSE_TIMEOUT if self.acse_timeout is None else self.acse_timeout
        self.dimse_timeout = s.RIS_DICOM_DIMSE_TIMEOUT if self.dimse_timeout is None else self.dimse_timeout
        self.network_timeout = (
            s.RIS_DICOM_NETWORK_TIMEOUT if self.network_timeout is None else self.network_timeout
        )
        self.maximum_associations = self.maximum_associations or s.RIS_DICOM_MAX_ASSOCIATIONS
        self.maximum_pdu_size = (
            s.RIS_DICOM_MAX_PDU if self.maximum_pdu_size is None else self.maximum_pdu_size
        )
        if self.accelerated is None:
            self.accelerated = s.RIS_DICOM_ACCELERATED
        if self.pdu_read_timeout is None:
            self.pdu_read_timeout = s.RIS_DICOM_PDU_READ_TIMEOUT
        if self.associate_timeout is None:
            self.associate_timeout = s.RIS_DICOM_ASSOCIATE_TIMEOUT
        self.max_pending_per_address = self.max_pending_per_address or s.RIS_DICOM_MAX_PENDING_PER_ADDRESS
        self.max_pending = self.max_pending or s.RIS_DICOM_MAX_PENDING
        if self.ssl_context is None and s.RIS_DICOM_TLS_CERT and self.tls_port is None:
            self.ssl_context = build_ssl_context(
                cert=s.RIS_DICOM_TLS_CERT, key=s.RIS_DICOM_TLS_KEY, ca=s.RIS_DICOM_TLS_CA
            )
            self.tls_port = s.RIS_DICOM_TLS_PORT
            self.plain = not s.RIS_DICOM_TLS_ONLY
        if self.ssl_context is not None and self.tls_port is None:
            self.tls_port = s.RIS_DICOM_TLS_PORT

    # -- assembly ---------------------------------------------------------------------
    def build_ae(self) -> tuple[AE, list[tuple[Any, ...]]]:
        patches.apply(accelerated=bool(self.accelerated))
        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = self.acse_timeout
        ae.dimse_timeout = self.dimse_timeout
        ae.network_timeout = self.network_timeout
        # pynetdicom counts every acceptor thread against maximum_associations, connections
        # that have not sent an A-ASSOCIATE-RQ yet included, so a peer without an AE title could
        # fill it. The node's FrontDoor counts only accepted associations (frontdoor.py); the
        # library's own check is kept out of the way.
        ae.maximum_associations = PYNETDICOM_MAXIMUM_ASSOCIATIONS
        ae.maximum_pdu_size = self.maximum_pdu_size
        # The policy checks called/calling AE titles against Stations; pynetdicom's static
        # lists stay off.
        ae.require_called_aet = False
        ae.require_calling_aet = []
        ae.add_supported_context(Verification, VERIFICATION_TRANSFER_SYNTAXES)
        modules = load_service_modules(ae, self.services or [])
        return ae, collect_handlers(modules)

    def start(self) -> DicomNode:
        ae, handlers = self.build_ae()
        self.ae = ae
        policy = AssociationPolicy(ae_title=self.ae_title)
        self.front_door = FrontDoor(
            maximum_associations=int(self.maximum_associations or 0),
            associate_timeout=float(self.associate_timeout or 0),
            per_address=int(self.max_pending_per_address or 1),
            total=int(self.max_pending or 1),
        )
        listeners: list[tuple[int, ssl.SSLContext | None]] = []
        if self.plain:
            listeners.append((int(self.port or 0), None))
        if self.ssl_context is not None:
            listeners.append((int(self.tls_port or 0), self.ssl_context))
        for port, context in listeners:
            server = ae.make_server(
                (self.host, port),
                ae_title=self.ae_title,
                ssl_context=context,
                evt_handlers=handlers,
                server_class=RISAssociationServer,
                policy=policy,
                front_door=self.front_door,
                pdu_read_timeout=float(self.pdu_read_timeout or 0),
                accelerated=bool(self.accelerated),
            )
            ae._servers.append(server)  # so ae.shutdown()/server.shutdown() know it
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"DicomServer@{port}",
                daemon=True,
            )
            thread.start()
            self.servers.append(server)
            self._threads.append(thread)
            bound_port = server.server_address[1]
            if context is None:
                self.port = bound_port
            else:
                self.tls_port = bound_port
        logger.info(
            "DICOM node %s listening on %s port %s%s; services: %s",
            self.ae_title,
            self.host,
            self.port if self.plain else "-",
            f", TLS port {self.tls_port}" if self.ssl_context is not None else "",
            ", ".join(self.services or []) or "verification only",
        )
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let running associations finish for ``grace`` seconds, abort the rest."""
        for server in list(self.servers):
            try:
                server.shutdown()
            except Exception:  # pragma: no cover - already closed
                logger.exception("error stopping DICOM server")
        self.servers.clear()
        if self.ae is not None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(a.is_alive() for a in self.ae.active_associations):
                time.sleep(0.05)
            for assoc in self.ae.active_associations:
                assoc.abort()
            for assoc in self.ae.active_associations:
                assoc.join(timeout=2.0)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        logger.info("DICOM node %s stopped", self.ae_title)

    @property
    def running(self) -> bool:
        return bool(self.servers)
