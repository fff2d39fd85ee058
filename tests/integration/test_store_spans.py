"""Store commands make client spans (OpenTelemetry's PyMongo instrumentation, on PyMongo's
async client) under the current trace, and none outside one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.runtime.runtime import Runtime
from services.runtime.store.mongo import MongoStore
from services.runtime.telemetry import Telemetry
from tests.conftest import distributed_settings, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def traced(mongo_url: str) -> AsyncIterator[tuple[Telemetry, InMemorySpanExporter, MongoStore]]:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry("store-spans-test", processors=[SimpleSpanProcessor(exporter)])
    store = MongoStore(mongo_url, unique("spans").replace("-", "_"), telemetry=telemetry)
    try:
        yield telemetry, exporter, store
    finally:
        await store.drop()
        await store.close()
        telemetry.shutdown()


def client_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


async def test_a_store_call_inside_a_span_makes_a_child_span_for_its_command(
        traced: tuple[Telemetry, InMemorySpanExporter, MongoStore]) -> None:
    telemetry, exporter, store = traced
    devices = store.collection("devices")
    await devices.insert_one({"_id": "D-1", "name": "outside any trace"})
    assert client_spans(exporter) == [], "a command outside a trace makes no (root) span"

    with telemetry.tracer.start_as_current_span("request") as parent:
        assert await devices.find_one({"_id": "D-1"}) is not None
    (command,) = client_spans(exporter)
    context = parent.get_span_context()
    assert command.parent is not None
    assert (command.context.trace_id, command.parent.span_id) == (context.trace_id, context.span_id)
    database = store._db.name
    assert command.name == f"{database}.find"
    attributes = dict(command.attributes or {})
    assert attributes["db.system"] == "mongodb"
    assert attributes["db.name"] == database
    assert attributes["db.mongodb.collection"] == "devices"
    assert attributes["db.statement"] == "find", "the command's documents are not recorded"
    assert command.status.status_code is not StatusCode.ERROR


async def test_a_failed_command_makes_an_error_span(
        traced: tuple[Telemetry, InMemorySpanExporter, MongoStore]) -> None:
    telemetry, exporter, store = traced
    with telemetry.tracer.start_as_current_span("request"), pytest.raises(Exception):  # noqa: B017, PT011
        await store._db.command("noSuchCommand")
    (command,) = client_spans(exporter)
    assert command.status.status_code is StatusCode.ERROR


async def test_the_runtime_store_traces_into_the_runtime_telemetry(mongo_url: str) -> None:
    """Runtime.build hands its telemetry to the store it builds."""
    exporter = InMemorySpanExporter()
    settings = distributed_settings("127.0.0.1:1", mongo_url)
    runtime = Runtime.build(settings, span_processors=[SimpleSpanProcessor(exporter)])
    try:
        with runtime.telemetry.tracer.start_as_current_span("request") as parent:
            await runtime.store.collection("devices").count({"kind": "laptop"})
        commands = client_spans(exporter)  # a ping first (a query that may scan), then the count
        assert [c.name.split(".", 1)[1] for c in commands] == ["ping", "aggregate"]
        for command in commands:
            assert command.parent is not None
            assert command.parent.span_id == parent.get_span_context().span_id
    finally:
        assert isinstance(runtime.store, MongoStore)
        await runtime.store.drop()
        await runtime.store.close()
        runtime.telemetry.shutdown()
