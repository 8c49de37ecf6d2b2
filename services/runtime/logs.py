"""Logs for people: readable lines in a terminal, one JSON object per line elsewhere
(so a log shipper can index offer_id, command_id and event_id)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from .http import StartupError
from .secrets import redact

# The ids that name what a log line is about: taken from the message being handled (see
# message_context) or passed with `extra=`.
CONTEXT_FIELDS = ("offer_id", "contract_id", "command_id", "event_id", "recipient_id")

_context: ContextVar[dict[str, str] | None] = ContextVar("message_context", default=None)


_fields_by_type: dict[type, tuple[str, ...]] = {}


def _context_fields_of(message_type: type) -> tuple[str, ...]:
    """The context fields a message type can have: a pydantic model's own fields (asking a
    model for a field it lacks costs an exception), else all of them."""
    found = _fields_by_type.get(message_type)
    if found is None:
        declared = getattr(message_type, "model_fields", None)
        found = (
            CONTEXT_FIELDS
            if declared is None
            else tuple(name for name in CONTEXT_FIELDS if name in declared)
        )
        _fields_by_type[message_type] = found
    return found


@contextmanager
def message_context(message: object) -> Iterator[None]:
    """Every line logged while `message` is handled carries its type and ids."""
    fields = {
        name: str(value)
        for name in _context_fields_of(type(message))
        if (value := getattr(message, name, None)) is not None
    }
    message_type = getattr(message, "type", None) or getattr(message, "command_type", None)
    if message_type is not None:
        fields["message_type"] = str(message_type)
    token = _context.set(fields)
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, str]:
    fields = dict(_context.get() or {})
    for name in CONTEXT_FIELDS:
        if (value := getattr(record, name, None)) is not None:
            fields[name] = str(value)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry))  # a URL's password never reaches the log


class TerminalFormatter(logging.Formatter):
    """One readable line; the ids the message text does not already name go at the end."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)-7s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        missing = [
            f"{name}={value}"
            for name, value in _fields(record).items()
            if name != "message_type" and value not in line
        ]
        return redact(f"{line}  [{' '.join(missing)}]" if missing else line)


class StartupErrorsInOneLine(logging.Filter):
    """uvicorn logs a failed start-up with a traceback; ours already say what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StartupError):
            record.msg, record.args, record.exc_info = str(record.exc_info[1]), (), None
        return True


def setup_logging(service: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(TerminalFormatter(service))
    else:
        handler.setFormatter(JsonFormatter())
    handler.addFilter(StartupErrorsInOneLine())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty about routine group coordination.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
