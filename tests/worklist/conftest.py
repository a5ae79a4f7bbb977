"""Fixtures for the worklist tests: DCMTK's example worklist database and queries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DCMTK_EXAMPLES = Path("/usr/share/doc/dcmtk/examples")


def _dump2dcm(dumps, out: Path, suffix: str) -> None:
    if not dumps or shutil.which("dump2dcm") is None:
        pytest.fail("DCMTK examples / dump2dcm missing (apt package dcmtk; make test installs it)")
    for dump in dumps:
        subprocess.run(
            ["dump2dcm", "-q", str(dump), str(out / f"{dump.stem}{suffix}")],
            check=True,
            capture_output=True,
            timeout=30,
        )


@pytest.fixture(scope="session")
def dcmtk_worklists(tmp_path_factory) -> Path:
    """DCMTK's example worklist database (AE folder OFFIS), converted from its .dump files."""
    out = tmp_path_factory.mktemp("wlistdb") / "OFFIS"
    out.mkdir()
    _dump2dcm(sorted((DCMTK_EXAMPLES / "wlistdb" / "OFFIS").glob("*.dump")), out, ".wl")
    (out / "lockfile").touch()
    return out


@pytest.fixture(scope="session")
def dcmtk_queries(tmp_path_factory) -> Path:
    """DCMTK's example MWL queries (wlistqry*.dump) as DICOM files."""
    out = tmp_path_factory.mktemp("wlistqry")
    _dump2dcm(sorted((DCMTK_EXAMPLES / "wlistqry").glob("wlistqry*.dump")), out, ".dcm")
    return out
