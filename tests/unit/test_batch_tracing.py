"""A batch's consumer span continues the trace its messages came from."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.runtime.bus.base import Message
from services.runtime.bus.delivery import Delivery, RawRecord, RetryPolicy
from services.runtime.metrics import Metrics
from services.runtime.telemetry import Telemetry, current_trace_carrier, headers_from_carrier


async def _publish(messages: object) -> None:
    raise AssertionError("nothing is dead-lettered here")


async def _consume(records: list[RawRecord]) -> tuple[InMemorySpanExporter, Telemetry, Delivery]:
    spans = InMemorySpanExporter()
    telemetry = Telemetry("test", processors=[SimpleSpanProcessor(spans)])
    delivery = Delivery(policy=RetryPolicy(max_attempts=1), telemetry=telemetry, metrics=Metrics(),
                        publish=_publish)

    async def handler(messages: Sequence[Message]) -> None:
        pass

    assert await delivery.batch("g", handler, records)
    return spans, telemetry, delivery


def _records(producer_headers: list[list[tuple[str, bytes]]]) -> list[RawRecord]:
    return [RawRecord("t", 0, i, b"k", b"{}", tuple(h)) for i, h in enumerate(producer_headers)]


def _producer(telemetry: Telemetry, name: str) -> tuple[list[tuple[str, bytes]], int]:
    with telemetry.tracer.start_as_current_span(name) as span:
        return headers_from_carrier(current_trace_carrier()), span.get_span_context().span_id


async def test_a_batch_from_one_producer_span_is_its_child() -> None:
    source = Telemetry("producer")
    headers, producer = _producer(source, "publish")
    spans, _, _ = await _consume(_records([headers, headers]))
    (span,) = spans.get_finished_spans()
    assert span.name == "t process" and span.parent is not None and span.parent.span_id == producer


async def test_a_batch_from_several_traces_links_each() -> None:
    source = Telemetry("producer")
    (h1, p1), (h2, p2) = _producer(source, "one"), _producer(source, "two")
    spans, _, _ = await _consume(_records([h1, h2, h1]))
    (span,) = spans.get_finished_spans()
    assert span.parent is None
    assert sorted(link.context.span_id for link in span.links) == sorted([p1, p2])


async def test_a_batch_from_several_producer_spans_of_one_trace_continues_it() -> None:
    """One request's events published under two producer spans (say, two relay rounds) and
    fetched together: the trace runs on under the first, the other is linked."""
    source = Telemetry("producer")
    with source.tracer.start_as_current_span("request") as request:
        (h1, p1), (h2, p2) = _producer(source, "one"), _producer(source, "two")
    spans, _, _ = await _consume(_records([h1, h2, h1]))
    (span,) = spans.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == p1
    assert span.context.trace_id == request.get_span_context().trace_id
    assert [link.context.span_id for link in span.links] == [p2]
