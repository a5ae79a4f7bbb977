"""DCMTK's example worklists, imported, answer DCMTK's example queries as wlmscpfs does.

wlmscpfs serves the .wl files themselves (inside a loopback-only network namespace: it binds
every interface); the RIS node serves what ``import_worklists`` made of them. Both are asked
with ``findscu -W`` and every query file of DCMTK's ``wlistqry`` examples, and the answers
are compared attribute by attribute.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from scheduling.models import ScheduledProcedureStep, Station
from tests.dicom_support import dcmtk
from worklist.importer import import_worklists

SCRIPT = Path(__file__).parent / "scripts" / "wlmscpfs_query.sh"
QUERIES = [f"wlistqry{i}" for i in range(13)]

# Where the RIS answers differently from the files, by design (docs/mpps-console.md):
# - Attributes the RIS knows although the file had none (SPS Status, SPS End Date/Time from
#   the procedure's duration, the catalog code the import assigned, an empty protocol code
#   sequence): wlmscpfs returns them empty or not at all, the RIS returns its value.
DERIVED = {
    "ScheduledProcedureStepStatus",
    "ScheduledProcedureStepEndDate",
    "ScheduledProcedureStepEndTime",
    "ScheduledProtocolCodeSequence",
    "RequestedProcedureCodeSequence",
}
# - Medical Alerts / Allergies are patient-level: a patient's alerts from all their files are
#   merged, never dropped, so the RIS answer contains the file's value.
CONTAINS = {"MedicalAlerts", "Allergies"}
# - Station name and location belong to the station: when two files give one AE title
#   different names, the RIS answers with the station's (from the first file).
STATION_LEVEL = {"ScheduledStationName": "name", "ScheduledProcedureStepLocation": "room"}
# - Comments on the SPS are not kept by the import (reported per file); every example file
#   has them empty, and an empty value may be answered by omission.
EMPTY_MAY_BE_MISSING = {"CommentsOnTheScheduledProcedureStep"}
IGNORED = {"SpecificCharacterSet"}


def _norm(ds: Dataset) -> dict:
    out = {}
    for elem in ds:
        if elem.keyword in IGNORED or elem.tag.group in (0x0002,):
            continue
        if elem.VR == "SQ":
            out[elem.keyword] = [_norm(item) for item in elem.value]
        elif elem.VM > 1:
            out[elem.keyword] = "\\".join(str(v) for v in elem.value)
        else:
            out[elem.keyword] = "" if elem.value is None else str(elem.value).strip()
    return out


def _answers(folder: Path) -> list[dict]:
    return [_norm(dcmread(p)) for p in sorted(folder.glob("rsp*.dcm"))]


@pytest.fixture(scope="session")
def wlmscpfs_answers(dcmtk_worklists, dcmtk_queries, tmp_path_factory) -> dict[str, list[dict]]:
    if shutil.which("wlmscpfs") is None or shutil.which("unshare") is None:
        pytest.fail("wlmscpfs (dcmtk) and unshare (util-linux) are needed")
    out = tmp_path_factory.mktemp("wlmscpfs_answers")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare -n needs root or user namespaces)")
    subprocess.run(
        ["unshare", "-n", "bash", str(SCRIPT), str(dcmtk_worklists.parent), str(dcmtk_queries), str(out)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return {q: _answers(out / q) for q in QUERIES}


@pytest.fixture
def imported_node(dicom_node, dcmtk_worklists):
    results = import_worklists([dcmtk_worklists], create_stations=True)
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    # The querying console sees every station, as wlmscpfs shows every file of its AE folder.
    Station.objects.create(
        ae_title="FINDSCU", name="FINDSCU", modality="OT", worklist_scope="all", charset_profile="ISO_IR 100"
    )
    return dicom_node


def _key(answer: dict) -> str:
    sps = (answer.get("ScheduledProcedureStepSequence") or [{}])[0]
    return "|".join(
        [
            answer.get("RequestedProcedureID", ""),
            sps.get("ScheduledProcedureStepID", ""),
            answer.get("PatientName", ""),
        ]
    )


def _station_value(root: dict, item: dict, keyword: str) -> str | None:
    """The registered value of the station the answered step is booked on."""
    step = ScheduledProcedureStep.objects.select_related("station")
    if item.get("ScheduledProcedureStepID"):
        step = step.filter(sps_id=item["ScheduledProcedureStepID"]).first()
    elif root.get("RequestedProcedureID"):
        step = step.filter(requested_procedure__requested_procedure_id=root["RequestedProcedureID"]).first()
    else:
        return None
    return getattr(step.station, STATION_LEVEL[keyword]) if step else None


def _compare(theirs: dict, ours: dict, path: str, problems: list[str], root: dict | None = None) -> None:
    root = root if root is not None else ours
    for keyword, value in theirs.items():
        where = f"{path}{keyword}"
        if keyword not in ours:
            if not (keyword in EMPTY_MAY_BE_MISSING and value == "") and not (
                keyword in DERIVED and not value
            ):
                problems.append(f"{where}: missing (wlmscpfs: {value!r})")
            continue
        if keyword in DERIVED and not value:
            continue
        if isinstance(value, list):
            if len(value) != len(ours[keyword]):
                problems.append(f"{where}: {len(ours[keyword])} items, wlmscpfs {len(value)}")
                continue
            for i, (a, b) in enumerate(zip(value, ours[keyword], strict=True)):
                _compare(a, b, f"{where}[{i}].", problems, root)
        elif keyword in CONTAINS:
            if value not in ours[keyword]:
                problems.append(f"{where}: {ours[keyword]!r} does not contain {value!r}")
        elif keyword in STATION_LEVEL and ours[keyword] != value:
            if ours[keyword] != _station_value(root, ours, keyword):
                problems.append(f"{where}: {ours[keyword]!r} is neither wlmscpfs {value!r} nor the station's")
        elif ours[keyword] != value:
            problems.append(f"{where}: {ours[keyword]!r} != wlmscpfs {value!r}")
    extra = set(ours) - set(theirs) - IGNORED - DERIVED
    if extra:
        problems.append(f"{path}: extra keys {sorted(extra)}")


def _grouped(answers: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for answer in sorted(answers, key=lambda a: json.dumps(a, sort_keys=True)):
        groups.setdefault(_key(answer), []).append(answer)
    return groups


@pytest.mark.dicom
@pytest.mark.integration
def test_imported_dcmtk_examples_answer_like_wlmscpfs(
    imported_node, wlmscpfs_answers, dcmtk_queries, tmp_path
):
    assert sum(len(a) for a in wlmscpfs_answers.values()) > 0  # the reference side really answered
    problems: list[str] = []
    compared = 0
    for query in QUERIES:
        out = tmp_path / query
        out.mkdir()
        proc = dcmtk(
            "findscu",
            "-W",
            "-X",
            "-od",
            str(out),
            "-aet",
            "FINDSCU",
            "-aec",
            imported_node.ae_title,
            imported_node.host,
            str(imported_node.port),
            str(dcmtk_queries / f"{query}.dcm"),
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-500:]
        ours = _grouped(_answers(out))
        theirs = _grouped(wlmscpfs_answers[query])
        counts = {k: len(v) for k, v in ours.items()}
        if counts != {k: len(v) for k, v in theirs.items()}:
            problems.append(
                f"{query}: matches {counts} != wlmscpfs { ({k: len(v) for k, v in theirs.items()}) }"
            )
            continue
        for key, answers in theirs.items():
            for theirs_one, ours_one in zip(answers, ours[key], strict=True):
                _compare(theirs_one, ours_one, f"{query} {key}: ", problems)
        compared += len(wlmscpfs_answers[query])
    assert not problems, "\n".join(problems)
    assert compared == sum(len(a) for a in wlmscpfs_answers.values()) == 56
