"""The resource types the facade serves, by FHIR name (drives URLs, search and metadata)."""

from __future__ import annotations

from .appointment import AppointmentType
from .base import Context, ResourceType
from .diagnosticreport import DiagnosticReportType
from .imagingstudy import ImagingStudyType
from .patient import PatientType
from .servicerequest import ServiceRequestType

REGISTRY: dict[str, ResourceType] = {
    t.name: t
    for t in (
        PatientType(),
        ServiceRequestType(),
        AppointmentType(),
        ImagingStudyType(),
        DiagnosticReportType(),
    )
}

__all__ = ["REGISTRY", "Context", "ResourceType"]
