"""Signals registration sends; apps above it (scheduling) connect in their ``AppConfig.ready``.

Registration sits below scheduling in the layers (docs/ARCHITECTURE.md), so it never imports
scheduling: a merge *asks* the owners of patient-linked rows to move them by sending
``patient_merging`` inside its transaction; each receiver moves its own rows through its own
service and returns how many it moved.
"""

from django.dispatch import Signal

# Sent inside the merge transaction: source_patient_id, target_patient_id. Receivers return
# {"orders_moved": n}-style counts that the merge's audit record sums.
patient_merging = Signal()
