"""Logging: the process's configuration (text or JSON lines on stderr) and the worker's one line
per attempt.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the fields a
line was given (``extra=``, e.g. an attempt's ids) and ``exception`` when there is one. Only the
standard library: a formatter is a few lines, not worth a dependency.

What is logged never holds a secret: attempt lines carry ids, counts, statuses and error classes,
never a URL (it may hold a token), a header, a body or a signing secret.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from ...core.delivery import Delivery
from ...core.events import AttemptFailed, AttemptSucceeded, DomainEvent
from .metrics import error_class

__all__ = ["ATTEMPTS_LOGGER", "JsonFormatter", "LogFormat", "configure_logging", "log_attempts"]

#: The logger of the per-attempt lines: raise its level to WARNING to silence them alone.
ATTEMPTS_LOGGER = "attribution_webhooks.attempts"

_attempts = logging.getLogger(ATTEMPTS_LOGGER)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A LogRecord's own attributes: whatever else a record holds was given by ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    level: str, log_format: LogFormat | str = LogFormat.TEXT, stream: TextIO | None = None
) -> None:
    """The root logger of a ``serve`` or ``worker`` process: ``level`` and ``log_format`` on
    ``stream`` (stderr). Replaces any handler configured before (a second call reconfigures)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if level != "debug":
        # httpx logs every request at INFO (a cost on the delivery path); alembic and uvicorn
        # repeat what our own lines say.
        for name in ("httpx", "alembic", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)


def log_attempts(delivery: Delivery, events: Sequence[DomainEvent]) -> None:
    """One INFO line per attempt among ``events``."""
    if not _attempts.isEnabledFor(logging.INFO):
        return
    status: int | None
    for event in events:
        if isinstance(event, AttemptSucceeded):
            outcome, status, error = "succeeded", event.status_code, None
        elif isinstance(event, AttemptFailed):
            outcome, status, error = "failed", event.status_code, error_class(event)
        else:
            continue
        fields = {
            "delivery_id": event.delivery_id,
            "event_id": delivery.event_id,
            "endpoint_id": event.endpoint_id,
            "attempt": event.attempt,
            "outcome": outcome,
            "status_code": status,
            "error_class": error,
            "latency_ms": round(event.elapsed_ms, 1),
        }
        _attempts.info(
            "attempt %d of %s (event %s) to %s: %s, %s in %.1f ms",
            event.attempt,
            event.delivery_id,
            delivery.event_id,
            event.endpoint_id,
            outcome,
            f"HTTP {status}" if status is not None else error,
            event.elapsed_ms,
            extra=fields,
        )
