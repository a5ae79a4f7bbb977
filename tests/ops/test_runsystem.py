"""runsystem is a supervisor (issue 9 item 22): a dead child comes back, with capped backoff."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from ris.management.commands.runsystem import CHILDREN, Supervisor


def wait_for(predicate, *, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (the supervisor reaps it; until then /proc says Z).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_child_that_keeps_dying_is_restarted_with_capped_backoff():
    said: list[str] = []
    sup = Supervisor(
        [("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"])],
        backoff=0.05,
        max_backoff=0.2,
        say=said.append,
    )
    runner = threading.Thread(target=sup.run, kwargs={"interval": 0.02})
    runner.start()
    try:
        wait_for(lambda: len(said) >= 5, timeout=60, what="five restarts", log=lambda: "\n".join(said))
    finally:
        sup.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert said[:5] == [
        "flaky exited with code 3; restarting in 0.05s",
        "flaky exited with code 3; restarting in 0.1s",
        "flaky exited with code 3; restarting in 0.2s",
        "flaky exited with code 3; restarting in 0.2s",
        "flaky exited with code 3; restarting in 0.2s",
    ]
    assert len(sup.children[0].pids) >= 5


def test_backoff_doubles_and_is_capped():
    sup = Supervisor([], backoff=1, max_backoff=60)
    assert [sup.delay_for(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_children_are_declared():
    assert {"web", "dicom", "hl7", "worker", "beat"} <= {c.name for c in CHILDREN}


@pytest.mark.integration
def test_runsystem_restarts_a_killed_worker_and_stops_everything_on_sigterm(transactional_db, tmp_path):
    from tests.celery_support import _database_url, _purge

    broker = os.environ.get("RIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    _purge(broker)
    log_path = tmp_path / "runsystem.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ris.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "RIS_STORAGE_ROOT": str(tmp_path / "storage"),
        "RIS_VAR_DIR": str(tmp_path / "var"),
        "RIS_DICOM_PORT": str(free_port()),
        "RIS_DICOM_TLS_CERT": "",
        "DJANGO_DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    web = f"127.0.0.1:{free_port()}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runsystem", "--web", web, "--backoff", "0.5", "--skip-checks"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text() -> str:
        return log_path.read_text(errors="replace")

    def started(name: str) -> list[int]:
        return [int(p) for p in re.findall(rf"started {name} \(pid (\d+)\)", text())]

    all_pids: set[int] = set()
    try:
        for name in ("web", "dicom", "worker", "beat"):
            wait_for(lambda name=name: started(name), timeout=60, what=f"{name} started", log=text)
        first = started("worker")[0]
        wait_for(lambda: "ready" in text(), timeout=120, what="the worker ready", log=text)
        os.killpg(first, signal.SIGKILL)
        wait_for(
            lambda: "worker exited with code -9; restarting in 0.5s" in text(),
            timeout=60,
            what="the restart notice",
            log=text,
        )
        second = wait_for(lambda: started("worker")[1:], timeout=60, what="a new worker", log=text)[0]
        assert second != first and pid_alive(second)
        # The other children were left alone.
        assert len(started("web")) == 1 and len(started("dicom")) == 1
        assert proc.poll() is None
        for name in ("web", "dicom", "worker", "beat"):
            all_pids.update(started(name))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in all_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            raise
    assert rc == 0, text()
    wait_for(
        lambda: not [p for p in all_pids if pid_alive(p)], timeout=30, what="all children stopped", log=text
    )
