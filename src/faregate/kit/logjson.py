"""Logging setup for the server and the worker: the human format, or one JSON object per line.

`logging_config()` returns a `logging.config.dictConfig` dict that covers our loggers (through
the root logger) and uvicorn's; the server hands the same dict to uvicorn, which applies it in
every worker process it starts.

A log line carries the request id when the call passed `extra={"request_id": ...}`, or else
when REQUEST_ID is set in the current context (the /v1 metrics middleware sets it from the
response's x-request-id header, so lines logged after the response head carry it too)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from typing import Any, Literal

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "faregate_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id
    when known, exception text when there is one, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
                      .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def logging_config(level: str, fmt: Literal["text", "json"]) -> dict[str, Any]:
    """dictConfig for the root logger and uvicorn's loggers, everything to stderr."""
    level = level.upper()
    if fmt == "json":
        formatters: dict[str, Any] = {
            "default": {"()": JsonFormatter},
            "access": {"()": JsonFormatter},
            "faregate": {"()": JsonFormatter},
        }
    else:  # uvicorn's own look for its lines, ours for the rest (as before)
        formatters = {
            "default": {"()": "uvicorn.logging.DefaultFormatter",
                        "fmt": "%(levelprefix)s %(message)s", "use_colors": None},
            "access": {"()": "uvicorn.logging.AccessFormatter",
                       "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" '
                              "%(status_code)s"},
            "faregate": {"format": TEXT_FORMAT},
        }
    handlers = {name: {"class": "logging.StreamHandler", "formatter": name,
                       "stream": "ext://sys.stderr"} for name in formatters}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": handlers,
        "root": {"handlers": ["faregate"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
        },
    }
