"""The milestone table follows the event logs: refresh a procedure when its transition commits.

The scheduling and reports signals are sent from ``transaction.on_commit``, so the refresh
reads committed rows only. A refresh that fails is logged and left to the backstop
(``department.tasks.milestones_sync``): the writer's transaction has committed, its caller must
not see an error for the department's derived table.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError

from reports.signals import report_transitioned
from scheduling.signals import order_created, procedure_transitioned

from . import services

logger = logging.getLogger(__name__)


def _guarded(refresh, **kwargs) -> None:
    try:
        refresh(**kwargs)
    except DatabaseError:
        logger.exception("milestone refresh failed; the periodic sync will catch up")


def on_procedure_transitioned(sender, *, procedure_id, **kwargs) -> None:
    _guarded(services.milestones_refresh, procedure_ids=[procedure_id])


def on_order_created(sender, *, procedure_ids, **kwargs) -> None:
    _guarded(services.milestones_refresh, procedure_ids=list(procedure_ids))


def on_report_transitioned(sender, *, report_id, **kwargs) -> None:
    _guarded(services.milestones_refresh_for_report, report_id=report_id)


def connect() -> None:
    """Called once from ``DepartmentConfig.ready``."""
    procedure_transitioned.connect(on_procedure_transitioned, dispatch_uid="department.milestones.procedure")
    order_created.connect(on_order_created, dispatch_uid="department.milestones.order")
    report_transitioned.connect(on_report_transitioned, dispatch_uid="department.milestones.report")
