"""The RIS's one DICOM Application Entity: assembly, association policy, transport guards.

``DicomNode`` (node.py) builds the AE from settings and the service modules in
``settings.RIS_DICOM_SERVICES``; ``manage.py rundicom`` runs it; ``tests/dicom_support.py``
runs it in-process for tests. See docs/dicom.md.
"""

from .node import DicomNode, build_ssl_context
from .policy import StationInfo

__all__ = ["DicomNode", "StationInfo", "build_ssl_context"]
