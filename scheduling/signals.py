"""Signals other apps listen to. ``*_transitioned``/``order_created`` are sent from
``transaction.on_commit``; ``procedure_recorded`` is sent *inside* the transaction (for
outbox rows that must commit or roll back with the change)."""

from django.dispatch import Signal

# sender=RequestedProcedure class; kwargs: procedure_id, action, from_status, to_status
procedure_transitioned = Signal()
# sender=Order class; kwargs: order_id, procedure_ids
order_created = Signal()
# Inside the transaction, after the event row: sender=RequestedProcedure; kwargs:
# procedure_id, action ("order", "book", "arrive", …), from_status, to_status, at, source.
procedure_recorded = Signal()
