"""Structured logs: one JSON object a line (python-json-logger), or readable lines on a terminal.

Every record carries ``time``, ``level``, ``logger`` and ``message``, and the OpenTelemetry
``trace_id``/``span_id`` of the span that was current when it was logged (if one was), so a
log line leads to its trace. uvicorn's access lines carry ``client``, ``method``, ``path``,
``http_version`` and ``status_code`` as fields of their own.

:func:`log_config` is a :func:`logging.config.dictConfig` dictionary: ``estate run`` hands it to
uvicorn (``uvicorn.run(..., log_config=...)``), which applies it before serving; a process that
starts uvicorn another way calls :func:`configure` (``services.asgi``'s factories do).

The format: ``ESTATE_LOG_FORMAT`` = ``json``, ``text``, or ``auto`` (the default: text when
standard error is a terminal, JSON otherwise). The level: ``ESTATE_LOG_LEVEL`` (default INFO).
"""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
LogFormat = Literal["auto", "json", "text"]

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status_code")
_RESERVED = (*RESERVED_ATTRS, "color_message")  # uvicorn's coloured copy of the message


def trace_fields() -> dict[str, str]:
    """The current span's ids as W3C-style hex strings, or nothing outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": trace.format_trace_id(context.trace_id),
            "span_id": trace.format_span_id(context.span_id)}


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn logs each request as ``'%s - "%s %s HTTP/%s" %d'`` with these five arguments."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        return dict(zip(_ACCESS_FIELDS, record.args, strict=True))
    return {}


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, then the rest."""

    def __init__(self, **_: Any) -> None:  # dictConfig and uvicorn may pass fmt or use_colors
        super().__init__("%(message)s", reserved_attrs=_RESERVED)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)
        log_data.update(_access_fields(record))
        for key, value in trace_fields().items():
            log_data.setdefault(key, value)


class TextFormatter(logging.Formatter):
    """``2026-11-23 14:03:37,123 INFO    services.runtime: message  trace_id=… span_id=…``."""

    def __init__(self, **_: Any) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = trace_fields()
        return f"{line}  trace_id={ids['trace_id']} span_id={ids['span_id']}" if ids else line


def formatter(kind: Literal["json", "text"] = "json", **options: Any) -> logging.Formatter:
    """dictConfig's ``"()"`` factory for both formatters."""
    return TextFormatter(**options) if kind == "text" else JsonFormatter(**options)


def resolve_format(fmt: str, stream: TextIO | None = None) -> Literal["json", "text"]:
    """``auto`` is ``text`` on a terminal, ``json`` otherwise (a container, a file, a pipe)."""
    if fmt in ("json", "text"):
        return fmt  # type: ignore[return-value]
    if fmt != "auto":
        raise ValueError(f"unknown log format {fmt!r}: json, text or auto")
    stream = stream if stream is not None else sys.stderr
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "json"


def log_config(level: str = "INFO", fmt: str = "auto") -> dict[str, Any]:
    """The whole process's logging, uvicorn's included, as a dictConfig dictionary.

    Everything goes to one handler on the root logger (standard error); uvicorn's loggers keep
    no handlers of their own and propagate to it. The formatters keep uvicorn's names
    (``default``, ``access``) so that uvicorn's ``--use-colors`` option still finds them."""
    level = level.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level!r}")
    kind = resolve_format(fmt)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": f"{__name__}.formatter", "kind": kind},
            "access": {"()": f"{__name__}.formatter", "kind": kind},
        },
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default",
                        "stream": "ext://sys.stderr"},
        },
        "root": {"handlers": ["default"], "level": level},
        # No level here: uvicorn sets its own loggers' levels from its log_level option.
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    """Apply :func:`log_config` to this process (replacing uvicorn's own handlers, if any)."""
    logging.config.dictConfig(log_config(level, fmt))
