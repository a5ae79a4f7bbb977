"""Tripwire on the pynetdicom internals the node overrides or copies (ris/dicom/patches.py).

When an upgraded pynetdicom changes the source of any of them, this fails: read the new
upstream code against our version (named in the patch), adapt it, then record the new hash.
"""

from __future__ import annotations

import pytest

from ris.dicom import patches


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.upstream)
def test_upstream_source_unchanged(patch):
    assert patches.source_hash(patch.upstream) == patch.sha256, (
        f"{patch.upstream} changed upstream: re-read {patch.ours} against it, then update the hash"
    )


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.upstream)
def test_each_patch_names_the_hook_that_would_drop_it(patch):
    assert patch.kind in ("copied", "overridden", "replaced")
    assert patch.hook.strip()


def test_docs_list_every_patch():
    from pathlib import Path

    from django.conf import settings

    text = Path(settings.BASE_DIR, "docs/dicom.md").read_text(encoding="utf-8")
    missing = [p.upstream for p in patches.PATCHES if f"`{p.upstream}`" not in text]
    assert not missing, f"docs/dicom.md does not describe {missing}"


def test_patches_are_applied_at_node_start_not_at_import():
    import subprocess
    import sys

    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'ris.settings'); django.setup()\n"
        "import pynetdicom.dimse_messages as m, pynetdicom.dsutils as d, tempfile\n"
        "import ris.dicom, ris.dicom.transport, ris.dicom.patches, imaging.dicom, worklist.dicom_mpps\n"
        "assert m.create_file_meta is d.create_file_meta, 'patched at import'\n"
        "assert m.NamedTemporaryFile is tempfile.NamedTemporaryFile, 'patched at import'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("accelerated", [True, False])
def test_apply_switches_the_accelerated_file_meta(accelerated):
    import pynetdicom.dimse_messages as m
    from pynetdicom.dsutils import create_file_meta

    from ris.dicom import transport

    try:
        patches.apply(accelerated=accelerated)
        expected = transport._fast_create_file_meta if accelerated else create_file_meta
        assert m.create_file_meta is expected
        assert patches.is_accelerated() is accelerated
    finally:
        patches.apply(accelerated=True)
