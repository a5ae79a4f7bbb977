"""Start the whole RIS in the foreground: web, DICOM node, and Celery worker + beat.

One Ctrl-C stops everything. The worker and beat start only when CELERY_BROKER_URL is set;
without a broker, tasks run eagerly inside the web and DICOM processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import get_commands

from ris.servercommand import ServerCommand


class Command(ServerCommand):
    help = "Run web + DICOM node (+ Celery worker and beat when a broker is configured)."
    server_name = "runsystem"

    def add_arguments(self, parser):
        parser.add_argument("--web", default="127.0.0.1:8000", help="address:port for the web UI")
        parser.add_argument("--no-dicom", action="store_true")

    def serve(self, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        py = sys.executable
        manage = [py, str(settings.BASE_DIR / "manage.py")]
        specs = [("web", [*manage, "runserver", options["web"], "--noreload"])]
        if not options["no_dicom"] and "rundicom" in get_commands():
            specs.append(("dicom", [*manage, "rundicom"]))
        if settings.CELERY_BROKER_URL:
            celery = [py, "-m", "celery", "-A", "ris"]
            specs.append(("worker", [*celery, "worker", "-Q", "default,ingest", "-c", "2", "-l", "INFO"]))
            specs.append(
                ("beat", [*celery, "beat", "-l", "INFO", "-s", str(settings.VAR_DIR / "celerybeat-schedule")])
            )
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        for name, cmd in specs:
            self.children.append((name, subprocess.Popen(cmd, env=os.environ.copy(), start_new_session=True)))
        host = options["web"]
        self.stdout.write(
            self.style.SUCCESS(
                f"\nRIS running: web http://{host}/  "
                f"DICOM {settings.RIS_DICOM_AE_TITLE}@{settings.RIS_DICOM_BIND_ADDRESS}:{settings.RIS_DICOM_PORT}  "
                f"worker: {'celery' if settings.CELERY_BROKER_URL else 'eager (no broker)'}\n"
                "Demo logins (password demo-<username>): frontdesk, tech, radiologist, reviewer, head, admin\n"
                "Ctrl-C stops everything.\n"
            )
        )
        while not self.stopping.is_set():
            for name, proc in self.children:
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with {proc.returncode}; stopping the rest")
                    self._shutdown(f"{name} exited")
                    break
            time.sleep(0.5)

    def on_shutdown(self):
        for _name, proc in getattr(self, "children", []):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _name, proc in getattr(self, "children", []):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
