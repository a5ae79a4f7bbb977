"""Run the HL7 v2 MLLP listener in the foreground: ``python manage.py runhl7``."""

from __future__ import annotations

import logging

from django.conf import settings

from integration.hl7.server import MLLPServer
from ris.dicom.node import enable_db_pool
from ris.servercommand import ServerCommand

logger = logging.getLogger("integration.hl7")


class Command(ServerCommand):
    help = "Run the HL7 v2 MLLP listener (ADT, ORM^O01, OMI^O23 in; ACK after commit)."
    server_name = "runhl7"

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=None, help=f"default {settings.RIS_HL7_BIND_ADDRESS}")
        parser.add_argument("--port", type=int, default=None, help=f"default {settings.RIS_HL7_PORT}")
        parser.add_argument("--workers", type=int, default=None, help=f"default {settings.RIS_HL7_WORKERS}")
        parser.add_argument(
            "--no-db-pool", action="store_true", help="open a database connection per message instead"
        )

    def serve(self, **options):
        workers = options["workers"] or settings.RIS_HL7_WORKERS
        if not options["no_db_pool"]:
            # A fresh PostgreSQL backend per message has cold catalog caches (several ms per
            # query); the pool keeps warm connections across messages and threads.
            enable_db_pool(max_size=workers + 2)
        host = options["bind"] or settings.RIS_HL7_BIND_ADDRESS
        port = settings.RIS_HL7_PORT if options["port"] is None else options["port"]
        self.server = MLLPServer(host=host, port=port, workers=workers).start()
        message = f"HL7 MLLP listener {settings.RIS_HL7_APPLICATION} listening on {host}:{self.server.port}"
        logger.info(message)
        self.stdout.write(message)
        self.stdout.flush()
        while not self.stopping.wait(0.5):
            pass

    def on_shutdown(self):
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
