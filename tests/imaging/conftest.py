from __future__ import annotations

import pytest

from imaging import services
from tests.imaging.dicom_data import write_part10


@pytest.fixture
def receive(tmp_path):
    """Receive datasets through the durable path (as the C-STORE handler does)."""
    counter = {"n": 0}

    def do(*datasets, calling_ae="CT01", transfer_syntax="1.2.840.10008.1.2.1"):
        results = []
        for ds in datasets:
            counter["n"] += 1
            path = write_part10(tmp_path / f"rx{counter['n']}.dcm", ds, transfer_syntax)
            results.append(
                services.object_receive(
                    path=path,
                    calling_ae=calling_ae,
                    command_sop_class_uid=ds.SOPClassUID,
                    command_sop_instance_uid=ds.SOPInstanceUID,
                )
            )
        return results

    return do


@pytest.fixture
def ordered_procedure(db):
    """An order for a registered patient: (procedure, patient)."""
    from tests.factories import PatientFactory, make_order

    patient = PatientFactory(patient_id="MRN100", issuer="RIS")
    order = make_order(patient=patient)
    return order.procedures.select_related("order").get(), patient
