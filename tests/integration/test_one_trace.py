"""One trace on the real stack: a delivery recorded over HTTP in procurement travels through
Kafka into every service that reacts, hop after hop (inventory registers the devices and
announces them; migration assesses them and announces its verdicts; each announcement reaches
the services subscribed to its topic), and every span of it hangs off the right parent.

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
from contracts.inventory import DEVICES_TOPIC as INVENTORY_DEVICES
from contracts.migration import DEVICES_TOPIC as MIGRATION_DEVICES
from contracts.migration import REPLACEMENTS_TOPIC, ReplacementNeededV1
from contracts.procurement import DELIVERIES_TOPIC
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

HOPS: tuple[tuple[str, str, str | None, frozenset[str]], ...] = (
    # (topic, the service publishing on it in this trace, inside its consumer span of which
    #  topic (None: inside the HTTP request), the services whose consumers.py subscribe to it)
    (DELIVERIES_TOPIC, "procurement", None, frozenset({"inventory", "migration", "procurement", "reporting"})),
    (INVENTORY_DEVICES, "inventory", DELIVERIES_TOPIC, frozenset({"migration", "reporting"})),
    (MIGRATION_DEVICES, "migration", INVENTORY_DEVICES, frozenset({"inventory", "reporting"})),
)
"""The delivery's path. Procurement hears its own delivery (the budget spend); inventory
registers the devices; migration assesses them (the ``migration.device.assessed.v1`` verdicts
inventory's consumer receives and ignores, reporting's counts). Nothing else publishes in this
trace: procurement's budget was spent by the request, reporting publishes nothing."""
CONSUMES: dict[str, frozenset[str]] = {
    name: frozenset(topic for topic, _, _, consumers in HOPS if name in consumers) for name in registry.SERVICES}
"""Each service's consumer spans in the trace, by topic."""


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
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s; the trace so far: " + tree(_seen)
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

    def consumed() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {name: set() for name in registry.SERVICES}
        for s in in_trace():
            if s.kind is SpanKind.CONSUMER:
                found.setdefault(service_of(s), set()).add(topic_of(s))
        return found

    async def every_hop_consumed() -> bool:
        found = consumed()
        return all(found[name] >= topics for name, topics in CONSUMES.items())

    # New consumer groups start at the beginning of the topics, behind what earlier runs left there.
    await eventually(every_hop_consumed, "every hop of the delivery being consumed in the trace", 180)
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
        assert orphans() == [], tree(in_trace())

    found = in_trace()
    shown = tree(found)
    assert server.parent is None and service_of(server) == "procurement", shown
    by_id = {s.context.span_id: s for s in found}
    # Each service consumed exactly the topics it subscribes to that this trace crossed.
    assert consumed() == CONSUMES, shown
    # Only the hops publish, each in the service that owns the topic ...
    assert {(service_of(s), topic_of(s)) for s in found if s.kind is SpanKind.PRODUCER} == {
        (publisher, topic) for topic, publisher, _, _ in HOPS}, shown
    for topic, publisher, inside, consumers in HOPS:
        publishes = [s for s in found if s.kind is SpanKind.PRODUCER and topic_of(s) == topic]
        for publish in publishes:
            # ... from inside the request, or inside its own consumer span of the hop before ...
            parent = by_id.get(parent_id(publish) or 0)
            assert parent is not None, f"{publish.name} {shown}"
            if inside is None:
                assert parent is server, f"{publish.name} {shown}"
            else:
                assert (parent.kind, service_of(parent), topic_of(parent)) == (
                    SpanKind.CONSUMER, publisher, inside), f"{publish.name} {shown}"
        # ... and every consumer span of the topic is a child of one of its producer spans (a
        # batch of messages from several of them is a child of the first, linking the others) ...
        taken = [s for s in found if s.kind is SpanKind.CONSUMER and topic_of(s) == topic]
        producer_ids = {p.context.span_id for p in publishes}
        assert all(parent_id(s) in producer_ids for s in taken), f"{topic} {shown}"
        # ... so that each subscribed service took what each producer span published.
        for publish in publishes:
            reached = {service_of(s) for s in taken if parent_id(s) == publish.context.span_id
                       or any(link.context.span_id == publish.context.span_id for link in s.links)}
            assert reached == consumers, f"{publish.name} {shown}"


def topic_of(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("messaging.destination.name", ""))


def tree(found: list[ReadableSpan]) -> str:
    """The trace's spans (store commands left out) as an indented tree, for failure messages."""
    ids = {s.context.span_id for s in found}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in sorted(found, key=lambda s: s.start_time or 0):
        children.setdefault(parent_id(s) if parent_id(s) in ids else None, []).append(s)
    lines: list[str] = []

    def show(span: ReadableSpan, depth: int) -> None:
        if span.kind is not SpanKind.CLIENT:
            lines.append(f"{'  ' * depth}{span.kind.name} {span.name} [{service_of(span)}]"
                         + (f" links={len(span.links)}" if span.links else ""))
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)
    for root in children.get(None, []):
        show(root, 0)
    return "\n" + "\n".join(lines)


async def _ok(request: Awaitable[httpx.Response]) -> bool:
    return (await request).status_code == 200


async def _all_ok(requests: list[Awaitable[httpx.Response]]) -> bool:
    return all([(await r).status_code == 200 for r in requests])

