"""The conformance tables in the README and docs/dicom.md name the SOP classes the node serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from ris.dicom import DicomNode

UID_IN_ROW = re.compile(r"^\|[^|]*\|\s*(1\.2\.840\.10008\.[0-9.]+)\s*\|", re.MULTILINE)


def _node_sop_classes() -> set[str]:
    ae, _handlers = DicomNode(port=0).build_ae()
    return {
        str(cx.abstract_syntax)
        for cx in ae.supported_contexts
        if uid_to_service_class(cx.abstract_syntax) is not StorageServiceClass
    }


@pytest.mark.parametrize("document", ["README.md", "docs/dicom.md"])
def test_conformance_table_lists_the_node_sop_classes(document, db):
    text = Path(settings.BASE_DIR, document).read_text(encoding="utf-8")
    listed = set(UID_IN_ROW.findall(text))
    served = _node_sop_classes()
    assert listed == served, (
        f"{document}: listed but not served {listed - served}, served but not listed {served - listed}"
    )
