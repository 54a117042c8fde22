"""Logging setup: plain or JSON lines, each carrying the current request id."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from .._json import json_default
from ..context import current_request_id
from .time import iso_z

__all__ = ["JsonFormatter", "PlainFormatter", "RequestIdFilter", "configure_logging"]

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "taskName"}
)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) unless ``extra=`` gave one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        return True


class PlainFormatter(logging.Formatter):
    def __init__(self, fmt: str = PLAIN_FORMAT) -> None:
        super().__init__(fmt)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, extras, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_z(_record_time(record), timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id() or "-",
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=_safe_default)


def _record_time(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, UTC)


def _safe_default(value: Any) -> Any:
    try:
        return json_default(value)
    except TypeError:
        return repr(value)


_HANDLER_MARK = "_luser_handler"


def configure_logging(
    level: int | str = "INFO", json: bool = False, stream: IO[str] | None = None
) -> logging.Handler:
    """Send root logging to ``stream`` (stderr) as plain or JSON lines; safe to call again."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    # A handler filter, not a logger filter: logger filters skip records from child loggers.
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json else PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
