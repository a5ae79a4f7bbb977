"""Signals other apps listen to. Always sent from ``transaction.on_commit``."""

from django.dispatch import Signal

# sender=RequestedProcedure class; kwargs: procedure_id, action, from_status, to_status
procedure_transitioned = Signal()
# sender=Order class; kwargs: order_id, procedure_ids
order_created = Signal()
