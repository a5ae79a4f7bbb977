"""Start the whole RIS in the foreground: web, DICOM node, and Celery worker + beat.

A small supervisor: a child that exits is restarted with exponential backoff (logged as
"worker exited with code N; restarting in Ns"); a child that keeps dying is still restarted,
at most every ``--max-backoff`` seconds. Ctrl-C / SIGTERM stops every child (its whole process
group) and waits for them. The worker and beat start only when CELERY_BROKER_URL is set;
without a broker, tasks run eagerly inside the web and DICOM processes.

The children are declared in ``CHILDREN`` (name, command, when it runs): adding a server is
one entry, e.g. the HL7 listener ``Child("hl7", lambda c: [*c.manage, "runhl7"],
lambda c: c.has_command("runhl7"))``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import get_commands

from ris.servercommand import ServerCommand

logger = logging.getLogger("ris.runsystem")


@dataclass(frozen=True)
class Context:
    """What a child's command line may depend on."""

    options: dict
    manage: list[str]
    python: str = sys.executable

    def has_command(self, name: str) -> bool:
        return name in get_commands()

    @property
    def broker(self) -> bool:
        return bool(settings.CELERY_BROKER_URL)


@dataclass(frozen=True)
class Child:
    name: str
    command: Callable[[Context], list[str]]
    enabled: Callable[[Context], bool] = lambda _ctx: True


CHILDREN: list[Child] = [
    Child("web", lambda c: [*c.manage, "runserver", c.options["web"], "--noreload"]),
    Child(
        "dicom",
        lambda c: [*c.manage, "rundicom"],
        lambda c: not c.options.get("no_dicom") and c.has_command("rundicom"),
    ),
    # HL7 v2 MLLP listener (integration app, docs/integration.md).
    Child("hl7", lambda c: [*c.manage, "runhl7"], lambda c: c.has_command("runhl7")),
    Child(
        "worker",
        lambda c: [
            c.python,
            "-m",
            "celery",
            "-A",
            "ris",
            "worker",
            "-Q",
            "default,ingest",
            "-c",
            "2",
            "-l",
            "INFO",
        ],
        lambda c: c.broker,
    ),
    Child(
        "beat",
        lambda c: [
            *[c.python, "-m", "celery", "-A", "ris", "beat", "-l", "INFO"],
            *["-s", str(settings.VAR_DIR / "celerybeat-schedule")],
        ],
        lambda c: c.broker,
    ),
]


@dataclass
class Supervised:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # consecutive quick exits
    restart_at: float | None = None
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Start children, restart the dead ones with capped exponential backoff, stop them all."""

    def __init__(
        self,
        children: list[tuple[str, list[str]]],
        *,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 30.0,
        env: dict | None = None,
        say: Callable[[str], None] | None = None,
    ):
        self.children = [Supervised(name, argv) for name, argv in children]
        self.backoff, self.max_backoff, self.stable_after = backoff, max_backoff, stable_after
        self.env = env if env is not None else os.environ.copy()
        self.say = say or logger.warning
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def delay_for(self, failures: int) -> float:
        """1st quick exit → backoff, then doubled each time, never more than max_backoff."""
        return min(self.max_backoff, self.backoff * 2 ** max(0, failures - 1))

    def _start(self, child: Supervised) -> None:
        with self._lock:
            if self.stopping.is_set():
                return
            child.proc = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
            child.started_at = time.monotonic()
            child.restart_at = None
            child.pids.append(child.proc.pid)
        logger.info("started %s (pid %s)", child.name, child.proc.pid)

    def start(self) -> None:
        for child in self.children:
            self._start(child)

    def poll_once(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if self.stopping.is_set():
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            ran = now - child.started_at
            child.failures = 1 if ran >= self.stable_after else child.failures + 1
            delay = self.delay_for(child.failures)
            child.restart_at = now + delay
            self.say(f"{child.name} exited with code {code}; restarting in {delay:g}s")

    def run(self, interval: float = 0.2) -> None:
        self.start()
        try:
            while not self.stopping.wait(interval):
                self.poll_once()
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self.stopping.set()
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Each child leads its own session (start_new_session): its pool processes go with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def startup_banner(*, web: str, children: list[str] | None = None) -> str:
    """What ``make run`` prints once everything is started: where each part answers."""
    base = f"http://{web}"
    return (
        f"\nRIS running:\n"
        f"  web        {base}/\n"
        f"  API docs   {base}/api/docs/   (schema {base}/api/schema/)\n"
        f"  admin      {base}/admin/\n"
        f"  DICOM      {settings.RIS_DICOM_AE_TITLE}@{settings.RIS_DICOM_BIND_ADDRESS}:{settings.RIS_DICOM_PORT}\n"
        f"  worker     {'celery' if settings.CELERY_BROKER_URL else 'eager (no broker)'}\n"
        + (f"children: {', '.join(children)} (restarted when they exit)\n" if children else "")
        + "Demo logins (password demo-<username>): frontdesk, tech, radiologist, reviewer, head, admin\n"
        "Ctrl-C stops everything.\n"
    )


class Command(ServerCommand):
    help = (
        "Run web + DICOM node (+ Celery worker and beat when a broker is configured), restarting dead ones."
    )
    server_name = "runsystem"

    def add_arguments(self, parser):
        parser.add_argument("--web", default="127.0.0.1:8000", help="address:port for the web UI")
        parser.add_argument("--no-dicom", action="store_true")
        parser.add_argument("--backoff", type=float, default=1.0, help="first restart delay (seconds)")
        parser.add_argument("--max-backoff", type=float, default=60.0, help="longest restart delay (seconds)")

    def serve(self, **options):
        py = sys.executable
        ctx = Context(options=options, manage=[py, str(settings.BASE_DIR / "manage.py")], python=py)
        specs = [(c.name, c.command(ctx)) for c in CHILDREN if c.enabled(ctx)]
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(
            specs,
            backoff=options["backoff"],
            max_backoff=options["max_backoff"],
        )
        self.stdout.write(
            self.style.SUCCESS(startup_banner(web=options["web"], children=[name for name, _ in specs]))
        )
        self.stdout.flush()
        self.supervisor.run()

    def on_shutdown(self):
        # Called from the signal handler: only flag it; run() stops the children in its finally.
        supervisor = getattr(self, "supervisor", None)
        if supervisor is not None:
            supervisor.stopping.set()
