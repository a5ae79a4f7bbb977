"""Celery tasks for reports: thin adapters over services."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="reports.peer_review_sample", acks_late=True, ignore_result=True)
def peer_review_sample() -> int:
    """Beat job: assign a share of recently signed reports for RADPEER peer review."""
    return len(services.peer_review_sample())
