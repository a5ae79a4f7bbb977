"""Signal receivers: an order created after its study arrived is matched when created."""

from __future__ import annotations

import logging

from .services import _send_match_order

logger = logging.getLogger(__name__)


def on_order_created(sender, *, order_id: int, procedure_ids=None, **kwargs) -> None:
    # scheduling sends this on commit; the match runs in Celery (eager without a broker).

    _send_match_order(order_id)
