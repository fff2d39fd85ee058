"""Structured logs: JSON lines carrying the current span's ids; ``estate run`` hands uvicorn
a logging config that dictConfig accepts and that makes its access lines JSON too."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from typer.testing import CliRunner

from services.cli import app
from services.runtime.logs import UVICORN_LOGGERS, configure, log_config, resolve_format
from services.runtime.settings import Settings


class Stderr(io.StringIO):
    """Stands in for sys.stderr once the test runs (pytest swaps its own in after set-up)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.monkeypatch = monkeypatch

    def install(self) -> None:
        self.monkeypatch.setattr(sys, "stderr", self)


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stderr]:
    """Standard error as a string, and the process's logging put back as it was afterwards."""
    names = ["", *UVICORN_LOGGERS]
    saved = [(logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).level,
              logging.getLogger(n).propagate) for n in names]
    stream = Stderr(monkeypatch)
    yield stream
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_record_logged_inside_a_span_is_one_json_object_with_the_span_ids(stderr: Stderr) -> None:
    stderr.install()
    configure("INFO", "json")
    tracer = TracerProvider().get_tracer("test")
    log = logging.getLogger("services.test")
    with tracer.start_as_current_span("request") as span:
        log.info("stored %d devices", 3, extra={"collection": "devices"})
    log.info("after the span")
    inside, outside = json_lines(stderr)
    context = span.get_span_context()
    assert inside == {
        "time": inside["time"], "level": "INFO", "logger": "services.test",
        "message": "stored 3 devices", "collection": "devices",
        "trace_id": trace.format_trace_id(context.trace_id),
        "span_id": trace.format_span_id(context.span_id),
    }
    assert inside["time"].endswith("+00:00") and "T" in inside["time"]
    assert "trace_id" not in outside and "span_id" not in outside


def test_the_level_setting_filters_and_text_is_readable(stderr: Stderr) -> None:
    stderr.install()
    configure("WARNING", "text")
    logging.getLogger("services.test").info("not shown")
    logging.getLogger("services.test").warning("shown")
    (line,) = stderr.getvalue().splitlines()
    assert "WARNING" in line and "services.test: shown" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    with pytest.raises(ValueError):
        resolve_format("yaml")


def test_settings_read_the_log_level_and_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTATE_LOG_LEVEL", "debug")
    monkeypatch.setenv("ESTATE_LOG_FORMAT", "TEXT")
    settings = Settings()
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")
    monkeypatch.delenv("ESTATE_LOG_LEVEL")
    monkeypatch.delenv("ESTATE_LOG_FORMAT")
    assert (Settings().log_level, Settings().log_format) == ("INFO", "auto")


def test_estate_run_gives_uvicorn_a_valid_config_whose_access_lines_are_json(
        monkeypatch: pytest.MonkeyPatch, stderr: Stderr) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **options: served.append(options))
    for name in ("ESTATE_LOG_LEVEL", "ESTATE_MODE", "ESTATE_LOAD_SAMPLE_ESTATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESTATE_LOG_FORMAT", "json")
    result = CliRunner().invoke(app, ["run", "--service", "inventory", "--no-sample-estate"])
    assert result.exit_code == 0, result.output
    ((options),) = served
    assert options["log_level"] == "info"
    # What uvicorn.Config.configure_logging does with it (use_colors off, as --no-use-colors sets it):
    config = options["log_config"]
    config["formatters"]["default"]["use_colors"] = False
    config["formatters"]["access"]["use_colors"] = False
    stderr.install()
    logging.config.dictConfig(config)
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn.asgi"):  # uvicorn's log_level
        logging.getLogger(name).setLevel(options["log_level"].upper())
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d',  # as uvicorn logs a request
                                             "127.0.0.1:50000", "GET", "/devices?limit=5", "1.1", 200)
    logging.getLogger("uvicorn.error").info("Application startup complete.",
                                            extra={"color_message": "\x1b[32mcomplete\x1b[0m"})
    request, startup = json_lines(stderr)
    assert request["logger"] == "uvicorn.access" and request["level"] == "INFO"
    assert (request["client"], request["method"], request["path"], request["status_code"]) == (
        "127.0.0.1:50000", "GET", "/devices?limit=5", 200)
    assert startup["message"] == "Application startup complete." and "color_message" not in startup


def test_estate_run_refuses_an_unknown_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **options: None)
    result = CliRunner().invoke(app, ["run", "--log-level", "loud"])
    assert result.exit_code == 1 and "unknown log level" in result.stderr


def test_log_config_is_a_plain_dictconfig_for_every_level_and_format() -> None:
    for level in ("DEBUG", "info", "WARNING"):
        for fmt in ("json", "text", "auto"):
            config = log_config(level, fmt)
            json.dumps(config)  # plain data: could be written to a --log-config file
            assert config["root"]["level"] == level.upper()


def test_the_uvicorn_factory_applies_the_logging_before_building_the_app(
        monkeypatch: pytest.MonkeyPatch, stderr: Stderr) -> None:
    from services import asgi
    from services.runtime.logs import JsonFormatter
    for name in ("ESTATE_MODE", "ESTATE_LOAD_SAMPLE_ESTATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESTATE_LOG_FORMAT", "json")
    monkeypatch.setenv("ESTATE_LOG_LEVEL", "warning")
    stderr.install()
    app_ = asgi.platform()
    assert app_.state.runtime.settings.log_format == "json"
    root = logging.getLogger()
    assert root.level == logging.WARNING
    assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]
    logging.getLogger("uvicorn.error").warning("started")
    (line,) = json_lines(stderr)
    assert line["logger"] == "uvicorn.error" and line["message"] == "started"
