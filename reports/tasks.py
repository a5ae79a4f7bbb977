"""Celery tasks for reports: thin adapters over services."""

from __future__ import annotations

import logging

from celery import shared_task

from ris.locks import single_run

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="reports.peer_review_sample", acks_late=True, ignore_result=True)
def peer_review_sample() -> int:
    """Beat job: consider newly signed reports for RADPEER peer review (one run at a time)."""
    with single_run("reports.peer_review_sample") as acquired:
        return len(services.peer_review_sample()) if acquired else 0
