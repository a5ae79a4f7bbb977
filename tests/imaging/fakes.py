"""Fake pynetdicom events for handler tests (layer 2 of the DICOM test pyramid)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset


@dataclass
class FakeRequestor:
    ae_title: str = "CT01"


@dataclass
class FakeAssoc:
    requestor: FakeRequestor = field(default_factory=FakeRequestor)


@dataclass
class FakeRequest:
    AffectedSOPClassUID: str
    AffectedSOPInstanceUID: str


class FakeStoreEvent:
    def __init__(self, path: Path, *, sop_class: str, sop_instance: str, assoc: FakeAssoc | None = None):
        self.dataset_path = path
        self.request = FakeRequest(sop_class, sop_instance)
        self.assoc = assoc or FakeAssoc()


def status_of(result) -> int:
    return result.Status if isinstance(result, Dataset) else int(result)
