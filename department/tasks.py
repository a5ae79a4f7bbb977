"""Celery tasks of the department: thin adapters over ``department.services``."""

from __future__ import annotations

from celery import shared_task

from ris.locks import single_run

from . import services


@shared_task(name="department.milestones_sync", acks_late=True, ignore_result=True)
def milestones_sync() -> int:
    """The backstop of the milestone table (beat: RIS_MILESTONE_SYNC_SECONDS); one run at a time."""
    with single_run("department.milestones_sync") as acquired:
        if not acquired:
            return 0
        return services.milestones_sync()
