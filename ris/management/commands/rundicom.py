"""Run the DICOM node in the foreground: ``python manage.py rundicom``.

SIGTERM/SIGINT stop accepting new associations, let running ones finish for a few seconds,
then abort what is left.
"""

from __future__ import annotations

import logging

from django.conf import settings

from ris.dicom import DicomNode
from ris.dicom.node import enable_db_pool
from ris.servercommand import ServerCommand

logger = logging.getLogger("ris.dicom")


class Command(ServerCommand):
    help = "Run the DICOM node (Verification, Modality Worklist, MPPS, Storage)."
    server_name = "rundicom"

    def add_arguments(self, parser):
        parser.add_argument("--ae-title", default=None, help=f"default {settings.RIS_DICOM_AE_TITLE}")
        parser.add_argument("--bind", default=None, help=f"default {settings.RIS_DICOM_BIND_ADDRESS}")
        parser.add_argument("--port", type=int, default=None, help=f"default {settings.RIS_DICOM_PORT}")
        parser.add_argument(
            "--grace", type=float, default=5.0, help="seconds running associations get at shutdown"
        )
        parser.add_argument(
            "--no-db-pool", action="store_true", help="open a database connection per association instead"
        )

    def serve(self, **options):
        self.grace = options["grace"]
        if not options["no_db_pool"]:
            enable_db_pool(max_size=settings.RIS_DICOM_MAX_ASSOCIATIONS + 4)
        self.node = DicomNode(
            ae_title=options["ae_title"] or "",
            host=options["bind"] or "",
            port=options["port"],
        ).start()
        node = self.node
        listening = []
        if node.plain:
            listening.append(f"{node.host}:{node.port}")
        if node.ssl_context is not None:
            listening.append(f"{node.host}:{node.tls_port} (TLS)")
        message = f"DICOM node AE title {node.ae_title} listening on {', '.join(listening)}"
        logger.info(message)
        self.stdout.write(message)
        self.stdout.flush()
        while not self.stopping.wait(0.5):
            pass

    def on_shutdown(self):
        node = getattr(self, "node", None)
        if node is not None:
            node.stop(grace=getattr(self, "grace", 5.0))
