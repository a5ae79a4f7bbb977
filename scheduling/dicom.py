"""Scheduling's part of the DICOM node: which calling AE titles are stations (``contribute(ae)``).

The node (``ris/dicom``) knows nothing of scheduling's models: this module registers the
station lookup its association policy uses (issue 10 item 7: ``ris/`` does not import
``scheduling``). It adds no presentation contexts and binds no handlers.
"""

from __future__ import annotations

from ris.dicom.policy import STATION_FIELDS, StationInfo, register_station_loader

from .models import Station


def load_station(ae_title: str) -> StationInfo | None:
    """The active station with this AE title, as the DICOM services need it."""
    row = Station.objects.filter(ae_title=ae_title, active=True).values(*STATION_FIELDS).first()
    return StationInfo(**row) if row else None


def contribute(ae) -> list:
    register_station_loader(load_station)
    return []
