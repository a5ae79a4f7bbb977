"""Celery adapters for the outbox: ``deliver`` (woken on commit), ``sweep`` (beat backstop)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="integration.deliver", acks_late=True, ignore_result=True)
def deliver(destination_id: int, ordering_key: str) -> int:
    from .services.delivery import deliver_key

    return deliver_key(destination_id=destination_id, ordering_key=ordering_key)


@shared_task(name="integration.sweep", ignore_result=True)
def sweep() -> int:
    from .services.delivery import sweep_due

    return sweep_due()
