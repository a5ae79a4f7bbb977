"""gunicorn settings for the RIS web process (deploy/systemd/ris-web.service).

With several workers, Prometheus metrics live in PROMETHEUS_MULTIPROC_DIR (one file per
worker); a worker that exits must be marked dead so its gauges are dropped.
"""

import os

timeout = 120
graceful_timeout = 30
accesslog = "-"
# nginx on the same host sets X-Forwarded-Proto/For (see deploy/nginx/ris.conf).
forwarded_allow_ips = "127.0.0.1"
# Large STOW-RS uploads and PDF rendering: keep request bodies streaming to the worker.
limit_request_line = 8190


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
