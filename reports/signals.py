"""Signals sent on commit after a report transition (for HL7 ORU, notifications, dashboards)."""

from django.dispatch import Signal

# kwargs: report_id, action ("submitted", "returned", "signed", "addendum"), to_status
report_transitioned = Signal()
# Inside the transaction of the transition (outbox rows): kwargs report_id, action, to_status.
report_recorded = Signal()
