"""Integration services: placer orders (HL7-independent, shared with the FHIR facade), the
outbox, and the inbound message log. The HL7 adapter lives in ``integration/hl7/``."""

from .orders import (
    DuplicatePlacerOrder,
    ExternalOrder,
    external_order_cancel,
    external_order_change,
    external_order_discontinue,
    external_order_place,
    order_get_by_placer,
)

__all__ = [
    "DuplicatePlacerOrder",
    "ExternalOrder",
    "external_order_cancel",
    "external_order_change",
    "external_order_discontinue",
    "external_order_place",
    "order_get_by_placer",
]
