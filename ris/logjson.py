"""One JSON object per log line (``RIS_LOG_FORMAT=json``), for journald/Loki/ELK.

Fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` (the formatted message, as
the plain format has it), ``process``, ``thread`` and ``exc`` for exceptions. Extra fields
are not copied wholesale: only the names in ``EXTRA_FIELDS`` (protocol facts such as the AE
title or a task id) — the RIS never logs names or patient IDs and this keeps it that way for
anything passed through ``extra=``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

EXTRA_FIELDS = ("ae_title", "peer", "task_id", "task_name", "status_code", "method", "duration_ms")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)
