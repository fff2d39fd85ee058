"""OpenTelemetry tracing: one trace from an HTTP request, through Kafka, into every consumer.

The W3C trace context is carried in Kafka message headers (``traceparent``/``tracestate``)
and, while an event waits in an outbox, inside the outbox entry itself.

Store commands are traced by OpenTelemetry's PyMongo instrumentation: its command listener
(:func:`store_command_listener`) is handed to each client (sync or async: PyMongo publishes
the same command events for both), not registered process-wide by ``PymongoInstrumentor``,
which binds the first tracer provider it is given for the life of the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.pymongo import CommandTracer
from opentelemetry.instrumentation.pymongo.version import __version__ as _pymongo_instrumentation_version
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer
from pymongo import monitoring

TRACE_HEADERS = ("traceparent", "tracestate")


class Telemetry:
    """Owns this process's tracer provider; built by the app factory, never at import time."""

    def __init__(self, service_name: str, otlp_endpoint: str | None = None,
                 processors: Iterable[SpanProcessor] = ()) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("estate-platform")
        self.store_tracer: Tracer = self.provider.get_tracer(
            "opentelemetry.instrumentation.pymongo", _pymongo_instrumentation_version)

    def shutdown(self) -> None:
        self.provider.shutdown()


class _ChildCommandTracer(CommandTracer):
    """The instrumentation's listener, for commands sent inside a trace only: a command with
    no current span (the outbox relay's polling, index builds at start-up) makes no root span."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if trace.get_current_span().get_span_context().is_valid:
            super().started(event)


def store_command_listener(telemetry: Telemetry) -> monitoring.CommandListener:
    """A PyMongo command listener making one CLIENT span per command (``<database>.<command>``,
    with ``db.system``, ``db.name``, ``db.mongodb.collection``, ``net.peer.*``; not the
    command's documents) as a child of the span current when the command is sent.

    The spans go to ``telemetry``'s tracer provider."""
    listener: monitoring.CommandListener = _ChildCommandTracer(telemetry.store_tracer)
    return listener


def current_trace_carrier() -> dict[str, str]:
    """The active trace context as W3C headers, to store beside a pending event."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def headers_from_carrier(carrier: Mapping[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in carrier.items() if k in TRACE_HEADERS]


def context_from_headers(headers: Iterable[tuple[str, bytes]]) -> Context:
    carrier: dict[str, Any] = {k: v.decode() for k, v in headers if k in TRACE_HEADERS and v}
    return propagate.extract(carrier)
