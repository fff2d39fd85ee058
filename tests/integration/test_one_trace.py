"""One trace on the real stack: a delivery recorded over HTTP in procurement travels through
Kafka into every service that reacts (inventory registers the devices and announces them;
migration and reporting hear of both), and every span of it hangs off the right parent.

The four services run in this process, each with its own runtime (tracer provider, metrics,
consumers) on the real Kafka and FerretDB, all exporting to one in-memory span exporter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts.common import DeviceKind
from contracts.envelope import new_envelope
from contracts.migration import REPLACEMENTS_TOPIC, ReplacementNeededV1
from services import registry
from services.runtime.app import create_app
from services.runtime.auth import Role, issue_token
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.conftest import distributed_settings, unique
from tests.integration.conftest import produce
from tests.integration.groups import every_service_begins_at_end

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BASE = "/procurement"
HARDWARE = {"model": "Dell Latitude E7450", "cpu_model": "Core i5-5300U", "cpu_arch": "x64", "cpu_cores": 2,
            "ram_mb": 8192, "disk_gb": 256, "tpm": "2.0", "firmware": "uefi"}
LOCATION = {"site": "Holborn Police Station", "borough": "Camden", "unit": "Territorial"}


_seen: list[ReadableSpan] = []
"""The spans of the running test, for failure messages."""


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    _seen.clear()
    return exporter


@pytest.fixture
async def apps(kafka_bootstrap: str, mongo_url: str, spans: InMemorySpanExporter) -> AsyncIterator[dict[str, FastAPI]]:
    """Each service as its own app and runtime, sharing a database and a consumer-group prefix
    as the deployed services share theirs."""
    database, prefix = unique("trace").replace("-", "_"), unique("trace") + "."
    await every_service_begins_at_end(kafka_bootstrap, prefix)
    started: dict[str, FastAPI] = {}
    async with AsyncExitStack() as stack:
        for name in registry.SERVICES:
            settings = distributed_settings(kafka_bootstrap, mongo_url, service_name=name, mongo_database=database,
                                            consumer_group_prefix=prefix, kafka_client_id=f"{prefix}{name}")
            unit = registry.unit(name)
            runtime = Runtime.build(settings, publishes=unit.publishes, span_processors=[SimpleSpanProcessor(spans)],
                                    setting_overrides={"load_sample_estate": name == "procurement"})
            app = create_app(settings, [unit], runtime=runtime)
            await stack.enter_async_context(app.router.lifespan_context(app))
            started[name] = app
        yield started


def client(app: FastAPI, subject: str, role: Role = Role.WRITER) -> httpx.AsyncClient:
    settings: Settings = app.state.runtime.settings
    token = issue_token(settings, subject=subject, roles=[role], now=datetime.now(UTC))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://estate.test",
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await probe():
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s; spans seen: " + repr(
            sorted({(s.name, str(s.resource.attributes["service.name"])) for s in _seen}))
        await asyncio.sleep(0.2)


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def one(found: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(found) == 1, f"{what}: {len(found)} spans: {[(s.name, service_of(s)) for s in found]}"
    return found[0]


async def test_a_recorded_delivery_is_one_trace_through_every_service_that_reacts(
        apps: dict[str, FastAPI], spans: InMemorySpanExporter, kafka_bootstrap: str) -> None:
    need_id, note = f"NEED-{uuid.uuid4().hex[:8]}", f"DN-{uuid.uuid4().hex[:8]}"
    tags = [f"MPS-L-{uuid.uuid4().hex[:8].upper()}" for _ in range(2)]
    procurement = apps["procurement"]
    async with client(procurement, "buyer@met") as buyer, client(procurement, "approver@met") as approver, \
            client(apps["inventory"], "reader@met", Role.READER) as inventory, \
            client(apps["migration"], "reader@met", Role.READER) as migration:
        await eventually(lambda: _ok(buyer.get(f"{BASE}/contracts/CO-DEVICES")), "the sample contracts loading")
        need = ReplacementNeededV1(need_id=need_id, site=LOCATION["site"], borough=LOCATION["borough"],
                                   kind=DeviceKind.LAPTOP, quantity=2, replaces=["MPS-D-000001", "MPS-D-000002"],
                                   reason="hardware below the Windows 8.1 minimum")
        envelope = new_envelope(type="migration.replacement.needed.v1", source="/estate/migration", subject=need_id,
                                time=datetime.now(UTC), data=need)
        await produce(kafka_bootstrap, REPLACEMENTS_TOPIC, need_id, envelope.to_bytes())

        async def drafted() -> bool:
            found = (await buyer.get(f"{BASE}/purchase-requests", params={"state": "draft"})).json()["items"]
            return any(n["need_id"] == need_id for r in found for n in r["needs"])
        await eventually(drafted, "the need becoming a draft")
        found = (await buyer.get(f"{BASE}/purchase-requests", params={"state": "draft"})).json()["items"]
        [rid] = [r["request_id"] for r in found if any(n["need_id"] == need_id for n in r["needs"])]
        submitted = await buyer.post(f"{BASE}/purchase-requests/{rid}/submit", json={
            "model": "Dell Latitude E7450", "unit_price_pence": 899_00, "contract_id": "CO-DEVICES", "quantity": 2})
        assert submitted.status_code == 200, submitted.text
        approved = await approver.post(f"{BASE}/purchase-requests/{rid}/approve", json={},
                                       headers={"If-Match": submitted.headers["ETag"]})
        assert approved.status_code == 200, approved.text
        ordered = await buyer.post(f"{BASE}/purchase-requests/{rid}/order")
        assert ordered.status_code == 200, ordered.text

        delivered = await buyer.post(f"{BASE}/purchase-requests/{rid}/deliveries", json={
            "delivery_id": note, "location": LOCATION,
            "devices": [{"asset_tag": t, "serial_number": f"SN-{t}", "os": {"family": "windows", "version": "8.1"},
                         "hardware": HARDWARE} for t in tags]})
        assert delivered.status_code == 200, delivered.text

        await eventually(lambda: _all_ok([inventory.get(f"/devices/{t}") for t in tags]), "inventory registering")
        await eventually(lambda: _all_ok([migration.get(f"/migration/devices/{t}") for t in tags]),
                         "migration recording the delivered devices")

    server = one([s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER
                  and s.attributes is not None
                  and s.attributes.get("url.path") == f"{BASE}/purchase-requests/{rid}/deliveries"],
                 "the delivery request")
    assert server.name == "POST /procurement/purchase-requests/{request_id}/deliveries"
    trace_id = server.context.trace_id

    def in_trace() -> list[ReadableSpan]:
        found = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
        _seen[:] = found
        return found

    def consumers(topic: str, producer: ReadableSpan) -> dict[str, ReadableSpan]:
        found = [s for s in in_trace() if s.kind is SpanKind.CONSUMER and s.name == f"{topic} process"
                 and parent_id(s) == producer.context.span_id]
        return {service_of(s): s for s in found}

    # Reporting and migration hear of the delivery and of the devices inventory registered from it.
    async def delivery_consumed() -> bool:
        publishes = [s for s in in_trace() if s.name == "procurement.deliveries publish"]
        return bool(publishes) and {"inventory", "migration", "reporting"} <= consumers(
            "procurement.deliveries", publishes[0]).keys()

    async def devices_consumed() -> bool:
        publishes = [s for s in in_trace() if s.name == "inventory.devices publish"]
        return bool(publishes) and {"migration", "reporting"} <= consumers("inventory.devices", publishes[0]).keys()

    # New consumer groups start at the beginning of the topics, behind what earlier runs left there.
    await eventually(delivery_consumed, "the delivery being consumed in the trace", 180)
    await eventually(devices_consumed, "the registered devices being consumed in the trace", 180)

    assert server.parent is None and service_of(server) == "procurement"
    publish = one([s for s in in_trace() if s.name == "procurement.deliveries publish"], "the delivery's publish")
    assert publish.kind is SpanKind.PRODUCER and service_of(publish) == "procurement"
    assert parent_id(publish) == server.context.span_id
    delivery_consumers = consumers("procurement.deliveries", publish)
    assert {"inventory", "migration", "reporting"} <= delivery_consumers.keys()
    registered = [s for s in in_trace() if s.name == "inventory.devices publish"]
    assert registered and all(service_of(s) == "inventory" and s.kind is SpanKind.PRODUCER for s in registered)
    assert {parent_id(s) for s in registered} == {delivery_consumers["inventory"].context.span_id}
    device_consumers = consumers("inventory.devices", registered[0])
    assert {"migration", "reporting"} <= device_consumers.keys()
    assert all(s.context.trace_id == trace_id for s in [*delivery_consumers.values(), *device_consumers.values()])
    # Every span of the trace hangs off another span of it: one root, no broken links. (A span
    # finishes before its parent: a store command inside a consumer still at work is not yet an
    # orphan, so wait for the parents to finish.)
    def orphans() -> list[tuple[str, str]]:
        ids = {s.context.span_id for s in in_trace()}
        return [(s.name, service_of(s)) for s in in_trace() if s is not server and parent_id(s) not in ids]

    async def no_orphans() -> bool:
        return not orphans()
    try:
        await eventually(no_orphans, "every span's parent finishing", 30)
    except AssertionError:
        assert orphans() == []
    assert {service_of(s) for s in in_trace()} >= {"procurement", "inventory", "migration", "reporting"}


async def _ok(request: Awaitable[httpx.Response]) -> bool:
    return (await request).status_code == 200


async def _all_ok(requests: list[Awaitable[httpx.Response]]) -> bool:
    return all([(await r).status_code == 200 for r in requests])

