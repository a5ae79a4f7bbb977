"""The node in-process, queried with DCMTK findscu (real subprocesses)."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from tests.dicom_support import dcmtk

pytestmark = [pytest.mark.dicom, pytest.mark.postgres]


def findscu(node, calling, keys, tmp_path, *, extra=()):
    out = tmp_path / f"rsp-{calling}"
    out.mkdir(exist_ok=True)
    args = [
        "-W",
        "-to",
        "10",
        "-ta",
        "10",
        "-aet",
        calling,
        "-aec",
        node.ae_title,
        "-X",
        "-od",
        str(out),
        *extra,
    ]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, node.host, str(node.port))
    files = sorted(out.glob("rsp*.dcm"))
    return result, [dcmread(f) for f in files]


def test_findscu_smoke(dicom_node, mwl_data, tmp_path):
    result, responses = findscu(
        dicom_node,
        "CT_UTF8",
        [
            "PatientName",
            "PatientID",
            "ScheduledProcedureStepSequence[0].Modality=CT",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        ],
        tmp_path,
    )
    print(result.stdout.decode(), result.stderr.decode())
    for r in responses:
        print(r)
    assert result.returncode == 0
    assert responses
