"""Base for long-running server management commands (DICOM node, supervisors).

SIGINT/SIGTERM → ``on_shutdown()``; a startup line names what listens where. Subclasses
implement ``serve(**options)`` (blocking) and ``on_shutdown()``.
"""

from __future__ import annotations

import logging
import signal
import threading

from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)


class ServerCommand(BaseCommand):
    requires_system_checks = "__all__"
    server_name = "server"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()

    def handle(self, *args, **options):
        self._install_signal_handlers()
        try:
            self.serve(**options)
        except KeyboardInterrupt:
            self._shutdown("SIGINT")

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: self._shutdown(signal.Signals(signum).name))

    def _shutdown(self, reason: str) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        logger.info("%s stopping (%s)", self.server_name, reason)
        self.on_shutdown()

    def serve(self, **options) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_shutdown(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
