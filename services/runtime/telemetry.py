"""OpenTelemetry tracing: one trace from an HTTP request, through Kafka, into every consumer.

The W3C trace context is carried in Kafka message headers (``traceparent``/``tracestate``)
and, while an event waits in an outbox, inside the outbox entry itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

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

    def shutdown(self) -> None:
        self.provider.shutdown()


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
