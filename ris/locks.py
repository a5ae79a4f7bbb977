"""One run at a time of a periodic job, across every beat and worker (PostgreSQL advisory lock).

Two beats started by mistake (or a slow run overlapping the next tick) enqueue the same job
twice; ``single_run("imaging.sweep_received")`` lets the first one run and makes the others
return at once (``acquired`` False). A session-level ``pg_try_advisory_lock`` never waits and
is released in ``finally`` — or by PostgreSQL itself when a killed worker's connection goes.
On SQLite (the embedded single-process mode) it always runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

from django.db import connection

logger = logging.getLogger(__name__)

# Upper 32 bits of every RIS job lock key ("RISJ"): apart from other advisory lock users.
_NAMESPACE = 0x5249534A


def lock_key(name: str) -> int:
    low = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    key = (_NAMESPACE << 32) | low
    return key - (1 << 64) if key >= (1 << 63) else key  # bigint range


@contextlib.contextmanager
def single_run(name: str):
    """``with single_run("job") as acquired: if acquired: …``."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = lock_key(name)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cur.fetchone()[0])
    if not acquired:
        logger.info("%s is already running elsewhere; this run skipped", name)
        yield False
        return
    try:
        yield True
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [key])
