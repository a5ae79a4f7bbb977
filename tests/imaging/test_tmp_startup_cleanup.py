"""Temporary files of receives a crash interrupted are removed when the node starts (issue 9 item 6).

Only files that belong to no live receive (no process holds their lock) go; a receive in
progress in another process and every stored object stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from imaging import storage

pytestmark = [pytest.mark.dicom, pytest.mark.postgres]

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def _age(path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _crashed_receive(tmp) -> str:
    """A receive process killed mid-object: its partial file stays, its lock died with it."""
    path = tmp / "rx-crashed.part"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'ris.settings')\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "settings.RIS_STORAGE_ROOT = Path(sys.argv[1])\n"
        "from imaging import storage\n"
        "f = storage.ReceiveFile()\n"
        "f.write(b'\\0' * 1000)\n"
        "print(f.name, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp.parent)], capture_output=True, text=True, timeout=60
    )
    name = result.stdout.strip()
    assert name and os.path.exists(name), result.stderr[-2000:]
    os.rename(name, path)
    return str(path)


def test_node_start_removes_orphans_only(settings, dicom_node_factory):
    tmp = storage.tmp_dir()
    crashed = _crashed_receive(tmp)
    orphan_stow = tmp / "in-orphan.part"
    orphan_stow.write_bytes(b"partial STOW-RS part")
    live = tmp / "rx-live.part"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        stored = storage.store(header=b"DICM", source=__import__("io").BytesIO(b"x" * 100))
        stored_path = storage.path_for(stored.relpath)
        for path in (crashed, orphan_stow, live, stored_path):
            _age(path, 30)  # a crash half a minute before the restart: far younger than 1 h

        dicom_node_factory()

        assert not os.path.exists(crashed)
        assert not orphan_stow.exists()
        assert live.exists()  # another live process is still writing it
        assert stored_path.exists() and stored_path.read_bytes() == b"DICM" + b"x" * 100
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_files_being_written_by_this_process_are_kept(settings):
    receive = storage.ReceiveFile()
    try:
        receive.write(b"\0" * 10)
        _age(receive.name, 30)
        assert storage.tmp_cleanup_at_startup() == 0
        assert os.path.exists(receive.name)
    finally:
        receive._discard()


def test_fresh_unlocked_files_are_kept_for_the_grace_period(settings):
    path = storage.tmp_dir() / "rx-just-created.part"
    path.write_bytes(b"")
    assert storage.tmp_cleanup_at_startup() == 0  # mkstemp → flock is not atomic
    _age(path, storage.TMP_ORPHAN_GRACE_SECONDS + 1)
    assert storage.tmp_cleanup_at_startup() == 1
