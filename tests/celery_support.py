"""Pytest plugin: a real Celery worker against Redis (see docs/ARCHITECTURE.md).

    def test_x(celery_worker_process):      # transactional_db; RIS_TEST_REDIS_URL
        ...                                  # tasks sent from the test go to the worker
        celery_worker_process.kill()         # SIGKILL (worker and its pool), mid-task
        celery_worker_process.start()        # a fresh worker

``celery_worker_factory(broker_url=..., env={...})`` starts workers on another broker (e.g. a
private redis-server a test stops and restarts). ``kill_mid_task(worker, predicate)`` SIGKILLs
the worker as soon as ``predicate()`` is true (poll every few ms), e.g. "some objects indexed".
The worker runs ``celery -A ris worker -Q ingest,default`` with DATABASE_URL pointing at the
pytest-django test database and RIS_STORAGE_ROOT at the test's storage root; the test
process sends to the same broker with eager mode off for the duration of the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

READY_TIMEOUT = 30


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    engine = s["ENGINE"]
    if "postgresql" not in engine:
        pytest.skip("the Celery worker fixture needs PostgreSQL (set DATABASE_URL)")
    user = quote(s.get("USER") or "postgres")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def _purge(broker_url: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2)
    try:
        client.delete("ingest", "default", "unacked", "unacked_index")
    finally:
        client.close()


class CeleryWorker:
    def __init__(self, *, broker_url: str, env: dict[str, str], log_dir: Path):
        self.broker_url = broker_url
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> CeleryWorker:
        self.log_path = self.log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        log = self.log_path.open("wb")
        exe = Path(sys.executable).with_name("celery")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "-A",
                "ris",
                "worker",
                "-Q",
                "ingest,default",
                "-c",
                "1",
                "-P",
                "prefork",
                "-l",
                "INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches the pool too
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"celery worker not ready after {READY_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (a crash, not a shutdown)."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        if not self.alive:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _point_app_at(broker_url: str | None, eager: bool):
    from ris.celery import app

    # Drop the app's handles to the previous broker's pools (kombu keeps pools per URL).
    app._pool = None
    app.amqp._producer_pool = None
    # The Django settings use the CELERY_ namespace, whose keys win over the plain ones.
    app.conf.CELERY_BROKER_URL = broker_url
    app.conf.CELERY_TASK_ALWAYS_EAGER = eager


@pytest.fixture
def celery_worker_factory(transactional_db, settings, tmp_path):
    from ris.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    workers: list[CeleryWorker] = []
    db_url = _database_url()

    def make(*, broker_url: str | None = None, env: dict | None = None, start: bool = True) -> CeleryWorker:
        broker_url = broker_url or os.environ.get("RIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        _purge(broker_url)
        _point_app_at(broker_url, eager=False)
        settings.CELERY_TASK_ALWAYS_EAGER = False
        worker_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ris.settings",
            "DATABASE_URL": db_url,
            "CELERY_BROKER_URL": broker_url,
            "RIS_STORAGE_ROOT": str(settings.RIS_STORAGE_ROOT),
            "DJANGO_DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        worker = CeleryWorker(broker_url=broker_url, env=worker_env, log_dir=tmp_path)
        workers.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in workers:
        worker.stop()
    _point_app_at(saved[0], eager=saved[1])


@pytest.fixture
def celery_worker_process(celery_worker_factory) -> CeleryWorker:
    return celery_worker_factory()


@pytest.fixture
def kill_mid_task():
    """``kill_mid_task(worker, predicate, timeout=20)``: SIGKILL as soon as predicate() is true."""

    def kill(worker: CeleryWorker, predicate, timeout: float = 20.0, interval: float = 0.005) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                worker.kill()
                return
            time.sleep(interval)
        raise AssertionError(f"condition to kill the worker never became true:\n{worker.log()}")

    return kill
