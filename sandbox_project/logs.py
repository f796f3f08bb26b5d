"""The console log: one line per record, plain text or JSON (LOG_FORMAT), without routine noise."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: time, level, logger, message (and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RoutineFilter(logging.Filter):
    """Drops rq's note of each registry cleaning (every worker, every maintenance pass) unless the
    log level is DEBUG: it says nothing an operator acts on, and buried everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("rq.") and record.levelno <= logging.INFO and "cleaning" in str(record.msg):
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


# Piston's clients carry the API key in the path: /piston/<key>/api/v2/...
PATH_KEY = re.compile(r"/piston/[^/\s]+/api/")


class RedactFilter(logging.Filter):
    """Removes the API key from any path a record mentions (Django logs a failed request's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/piston/" in message:
            record.msg, record.args = PATH_KEY.sub("/piston/<key>/api/", message), ()
        return True
