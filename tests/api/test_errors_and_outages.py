"""Failures a caller should still understand: an unexpected error (500) and a store that is
down or hung (503), each as RFC 9457 problem+json, counted in the metrics; and the MongoDB
adapter turning PyMongo's network failures into ``StoreUnavailable`` within its time limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from services.inventory.store import DEVICES
from services.registry import units
from services.runtime.app import create_app as create_platform_app
from services.runtime.clock import FixedClock
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from services.runtime.store import StoreUnavailable
from services.runtime.store.base import UpdateOp
from services.runtime.store.mongo import MongoStore
from tests.samples import device_body

pytestmark = pytest.mark.asyncio

PROBLEM = "application/problem+json"
OUTAGE = "no answer from mongodb://127.0.0.1:37017/ within 2.0 s (connection refused)"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def app(settings: Settings, clock: FixedClock, spans: InMemorySpanExporter) -> AsyncIterator[FastAPI]:
    """The embedded platform, as in conftest, with the finished spans kept for inspection."""
    runtime = Runtime.build(settings, clock=clock, span_processors=[SimpleSpanProcessor(spans)])
    application = create_platform_app(settings, units(), runtime=runtime)
    async with application.router.lifespan_context(application):
        yield application


def sample(app: FastAPI, name: str, **labels: str) -> float | None:
    registry = app.state.runtime.metrics.registry
    return registry.get_sample_value(name, {"service": app.state.runtime.settings.service_name, **labels})


# -- B: any unhandled exception is a counted problem+json 500 ------------------------------------------


async def test_an_unhandled_error_in_a_route_is_a_problem_500_counted_and_traced(
        app: FastAPI, writer: httpx.AsyncClient, spans: InMemorySpanExporter,
        caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/test-only/boom", boom, methods=["GET"])
    with caplog.at_level(logging.ERROR):
        answer = await writer.get("/test-only/boom")

    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["status"] == 500 and problem["type"] == "/problems/internal-error"
    assert problem["instance"] == "/test-only/boom"
    assert "hunter2" not in answer.text and "RuntimeError" not in answer.text
    error_id = problem["error_id"]
    assert error_id and error_id in problem["detail"]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None, "the error id and the traceback are logged"

    labels = {"method": "GET", "route": "/test-only/boom"}
    assert sample(app, "http_requests_total", **labels, status="500") == 1
    assert sample(app, "http_request_duration_seconds_count", **labels) == 1
    [span] = [s for s in spans.get_finished_spans() if s.name == "GET /test-only/boom"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 500


async def test_a_failing_handler_behind_a_real_route_gives_the_same_500(
        app: FastAPI, reader: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(asset_tag: str) -> None:
        raise KeyError("internal detail")

    monkeypatch.setattr(app.state.runtime.services["inventory"], "get", broken)
    answer = await reader.get("/devices/MPS-D-000901")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert "internal detail" not in answer.text
    assert sample(app, "http_requests_total", method="GET", route="/devices/{asset_tag}", status="500") == 1
    # the service keeps serving afterwards
    assert (await reader.get("/health/live")).status_code == 200


# -- A: the store unavailable is a 503 with Retry-After -------------------------------------------------


def store_down(app: FastAPI, monkeypatch: pytest.MonkeyPatch, *methods: str) -> None:
    collection = app.state.runtime.store.collection(DEVICES)

    async def unavailable(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(OUTAGE)

    for method in methods:
        monkeypatch.setattr(collection, method, unavailable)


async def test_reading_while_the_store_is_unavailable_is_a_503_with_retry_after(
        app: FastAPI, reader: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    store_down(app, monkeypatch, "find_one", "find")
    for path in ("/devices/MPS-D-000902", "/devices?limit=5"):
        answer = await reader.get(path)
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.headers["retry-after"] == str(settings.retry_after_s)
        problem = answer.json()
        assert problem["status"] == 503 and problem["type"] == "/problems/unavailable"
        assert "try again" in problem["detail"]
        assert "127.0.0.1" not in answer.text, "the store's address stays internal"
    assert sample(app, "http_requests_total", method="GET", route="/devices/{asset_tag}", status="503") == 1


async def test_writing_while_the_store_is_unavailable_is_a_503_and_recovers(
        app: FastAPI, writer: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store_down(app, monkeypatch, "find_one", "insert_one", "find_one_and_update", "update_one")
    answer = await writer.post("/devices", json=device_body("MPS-D-000903"))
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM) and "retry-after" in answer.headers
    monkeypatch.undo()
    assert (await writer.post("/devices", json=device_body("MPS-D-000903"))).status_code == 201


async def test_readiness_says_why_the_store_is_not_ready(
        app: FastAPI, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused() -> None:
        raise StoreUnavailable(OUTAGE)

    monkeypatch.setattr(app.state.runtime.store, "ping", refused)
    answer = await anonymous.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["store"] == f"unreachable: {OUTAGE}"
    assert answer.json()["checks"]["bus"] == "ok"


@pytest.mark.parametrize("settings", [Settings(store_timeout_s=0.3)])
async def test_readiness_gives_up_on_a_hung_store_within_the_store_timeout(
        app: FastAPI, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def hung() -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(app.state.runtime.store, "ping", hung)
    monkeypatch.setattr(app.state.runtime.bus, "ping", hung)
    started = time.perf_counter()
    answer = await anonymous.get("/health/ready")
    took = time.perf_counter() - started
    assert answer.status_code == 503
    assert took < 1.0, f"readiness took {took:.2f} s"
    checks = answer.json()["checks"]
    assert checks["store"] == "unreachable: no answer within 0.3 s"
    assert checks["bus"] == "unreachable: no answer within 0.3 s"


async def test_a_probe_error_without_a_message_still_says_what_it_was(
        app: FastAPI, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def bare() -> None:
        raise TimeoutError()

    monkeypatch.setattr(app.state.runtime.store, "ping", bare)
    checks = (await anonymous.get("/health/ready")).json()["checks"]
    assert checks["store"] == "error: TimeoutError"


# -- A: the MongoDB adapter on a refused and a hung server (no real store needed) ----------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts connections and never answers: a hung store."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()


OPERATIONS = {
    "ping": lambda s, c: s.ping(),
    "create_index": lambda s, c: c.create_index([("x", 1)]),
    "insert_one": lambda s, c: c.insert_one({"_id": "a"}),
    "insert_many": lambda s, c: c.insert_many([{"_id": "a"}]),
    "find_one": lambda s, c: c.find_one({"_id": "a"}),
    "find": lambda s, c: c.find({}, sort=[("_id", 1)], limit=5),
    "count": lambda s, c: c.count({}),
    "find_one_and_update": lambda s, c: c.find_one_and_update({"_id": "a"}, {"$set": {"x": 1}}),
    "update_one": lambda s, c: c.update_one({"_id": "a"}, {"$set": {"x": 1}}),
    "bulk_update": lambda s, c: c.bulk_update([UpdateOp({"_id": "a"}, {"$set": {"x": 1}})]),
    "delete_many": lambda s, c: c.delete_many({}),
}


async def test_every_mongo_operation_on_a_refused_store_raises_store_unavailable_in_time() -> None:
    port = free_port()
    store = MongoStore(f"mongodb://estate:s3cret@127.0.0.1:{port}/?authSource=admin", "outage", timeout_s=0.3)
    try:
        for name, operation in OPERATIONS.items():
            started = time.perf_counter()
            with pytest.raises(StoreUnavailable) as raised:
                await operation(store, store.collection("things"))
            took = time.perf_counter() - started
            assert took < 1.5, f"{name} took {took:.2f} s"
            message = str(raised.value)
            assert message == f"no answer from mongodb://127.0.0.1:{port}/ within 0.3 s (connection refused)", name
    finally:
        await store.close()


async def test_a_mongo_operation_on_a_hung_store_raises_store_unavailable_in_time() -> None:
    async with silent_server() as port:
        store = MongoStore(f"mongodb://127.0.0.1:{port}/", "outage", timeout_s=0.5)
        try:
            for name in ("find_one", "insert_one", "ping"):
                started = time.perf_counter()
                with pytest.raises(StoreUnavailable) as raised:
                    await OPERATIONS[name](store, store.collection("things"))
                took = time.perf_counter() - started
                assert took < 1.5, f"{name} took {took:.2f} s"
                assert str(raised.value).startswith(f"no answer from mongodb://127.0.0.1:{port}/ within 0.5 s (")
                assert "timed out" in str(raised.value)
        finally:
            await store.close()


async def test_the_mongo_store_keeps_its_old_constructor() -> None:
    store = MongoStore("mongodb://127.0.0.1:1/", "x", timeout_ms=1500)
    try:
        assert store.timeout_s == 1.5
    finally:
        await store.close()

