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
            entry["traceback"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RoutineFilter(logging.Filter):
    """Drops rq's note of each registry cleaning (every worker, every maintenance pass) unless the
    log level is DEBUG: it says nothing an operator acts on, and buried everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("rq.") and record.levelno <= logging.INFO and "cleaning" in str(record.msg):
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


# Piston's clients carry the API key in the path: /piston/<key>/api/v2/.... The segment after
# /piston/ (and any repeated slash) is masked whatever follows it, since a mistyped path must not
# show the key either; "api", the first segment of the key-less paths, is no key. The access log
# writes a path as the client sent it, where "/piston/" may be percent-encoded (%73, %2F) and still
# route there: either spelling counts.
PISTON = "".join(f"(?:{re.escape(char)}|%{ord(char):02x})" for char in "/piston") + "(?:/|%2f)+"
PATH_KEY = re.compile(PISTON + r"(?!api(?:[/?#\s\"]|%2f|$))[^/?#\s\"]+?(?=[/?#\s\"]|%2f|$)", re.IGNORECASE)


def redact(text: str) -> str:
    return PATH_KEY.sub("/piston/<key>", text)


class RedactFilter(logging.Filter):
    """Removes the API key from any path a record mentions: its message (Django logs a failed
    request's path, granian's access log every request's) and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if PATH_KEY.search(message):
            record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            # Formatters use the text cached here rather than format the exception again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
