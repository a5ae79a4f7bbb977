"""Celery tasks: thin adapters taking UIDs/IDs; the database is the truth.

Each task is idempotent (acks_late; re-running on the same rows is a no-op), retries only
transient errors with exponential backoff, and counts attempts in ``ReceivedObject`` so a
study that keeps failing ends ``dead`` instead of looping.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from ris.errors import RetriableError
from ris.locks import single_run

from . import services
from .previews import study_render_thumbnails

logger = logging.getLogger(__name__)

TRANSIENT = (RetriableError, OperationalError, InterfaceError)


def _backoff(retries: int) -> int:
    return min(2 ** (retries + 1), 300)


@shared_task(name="imaging.ingest_study", bind=True, acks_late=True, queue="ingest", max_retries=None)
def ingest_study(self, study_instance_uid: str) -> dict:
    try:
        return services.study_ingest(study_instance_uid=study_instance_uid)
    except TRANSIENT as exc:
        if self.request.retries + 1 >= settings.RIS_INGEST_MAX_ATTEMPTS:
            logger.error(
                "ingest of a study failed %d times: %s", self.request.retries + 1, type(exc).__name__
            )
            raise
        logger.warning("ingest retry %d (%s)", self.request.retries + 1, type(exc).__name__)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(name="imaging.match_order", bind=True, acks_late=True, queue="ingest", max_retries=5)
def match_order(self, order_id: int) -> int:
    try:
        return services.studies_match_order(order_id=order_id)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(name="imaging.sweep_received", acks_late=True, queue="ingest", ignore_result=True)
def sweep_received() -> dict:
    try:
        # One sweeper at a time even if two beats run (PostgreSQL advisory lock).
        with single_run("imaging.sweep_received") as acquired:
            return services.sweep_received() if acquired else {"skipped": True}
    except DatabaseError:
        logger.warning("sweeper: database unavailable; next run will retry")
        return {}


@shared_task(name="imaging.render_previews", bind=True, acks_late=True, max_retries=3)
def render_previews(self, study_id: int) -> int:
    try:
        return study_render_thumbnails(study_id=study_id)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
