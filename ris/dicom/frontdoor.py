"""Connections the node has not accepted yet: bounded per source address, in total and in time.

A TCP connection costs the node two threads (association + DUL) from the moment it is
accepted, before the peer has said who it is. Without bounds, a peer with no AE title could
hold every association slot with connections that send nothing or half an A-ASSOCIATE-RQ
(issue 9 item 4). Here:

* every connection is *pending* until the association policy accepts it; a pending
  connection must have delivered its A-ASSOCIATE-RQ within ``associate_timeout`` seconds of
  being accepted by TCP (the accept loop reaps it every ``poll_interval``);
* at most ``per_address`` connections from one source address, and ``total`` overall, are
  pending at once; one more evicts the *oldest* pending connection of that address (or
  overall), so a modality that sends its request at once gets in even while an attacker
  from the same address keeps reopening sockets;
* only accepted associations count against ``RIS_DICOM_MAX_ASSOCIATIONS`` (``try_accept``).

Dropped connections are logged (never audited: an attacker must not be able to write the
audit table at will); the per-PDU read deadline lives in ``transport.GuardedAssociationSocket``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

logger = logging.getLogger(__name__)


class Droppable(Protocol):
    def drop(self, *, reason: str) -> None: ...


class FrontDoor:
    def __init__(
        self,
        *,
        maximum_associations: int,
        associate_timeout: float,
        per_address: int,
        total: int,
    ) -> None:
        self.maximum_associations = maximum_associations
        self.associate_timeout = associate_timeout
        self.per_address = max(1, per_address)
        self.total = max(1, total)
        self._lock = threading.Lock()
        # connection -> (address, deadline), oldest first
        self._pending: OrderedDict[Droppable, tuple[str, float]] = OrderedDict()
        self._accepted: set[Droppable] = set()
        self.dropped = 0

    def deadline(self) -> float:
        return time.monotonic() + self.associate_timeout if self.associate_timeout else float("inf")

    def admit(self, conn: Droppable, address: str) -> float:
        """Register a new connection; evict the oldest pending ones over the limits.

        Returns the connection's deadline for its A-ASSOCIATE-RQ (monotonic time).
        """
        deadline = self.deadline()
        victims: list[tuple[Droppable, str]] = []
        with self._lock:
            same = [c for c, (a, _d) in self._pending.items() if a == address]
            while len(same) >= self.per_address:
                victim = same.pop(0)
                del self._pending[victim]
                victims.append((victim, "pending_limit_per_address"))
            while len(self._pending) >= self.total:
                victim, _ = self._pending.popitem(last=False)
                victims.append((victim, "pending_limit"))
            self._pending[conn] = (address, deadline)
        for victim, reason in victims:
            self._drop(victim, reason)
        return deadline

    def try_accept(self, conn: Droppable) -> bool:
        """Move ``conn`` from pending to accepted if an association slot is free (atomic)."""
        with self._lock:
            if conn not in self._pending:
                return False  # dropped meanwhile (deadline or eviction)
            if self.maximum_associations and len(self._accepted) >= self.maximum_associations:
                return False
            del self._pending[conn]
            self._accepted.add(conn)
            return True

    def is_pending(self, conn: Droppable) -> bool:
        with self._lock:
            return conn in self._pending

    def release(self, conn: Droppable) -> None:
        """The connection's association has ended (whatever its state)."""
        with self._lock:
            self._pending.pop(conn, None)
            self._accepted.discard(conn)

    def reap(self, now: float | None = None) -> int:
        """Drop pending connections past their deadline; called from the accept loop."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [c for c, (_a, deadline) in self._pending.items() if deadline <= now]
            for conn in expired:
                del self._pending[conn]
        for conn in expired:
            self._drop(conn, "associate_timeout")
        return len(expired)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"pending": len(self._pending), "accepted": len(self._accepted)}

    def _drop(self, conn: Droppable, reason: str) -> None:
        self.dropped += 1
        try:
            conn.drop(reason=reason)
        except Exception:  # pragma: no cover - the socket is already gone
            logger.debug("dropping a pending connection failed", exc_info=True)
