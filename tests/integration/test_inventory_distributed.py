"""The inventory service on real Kafka and a real MongoDB-wire server (FerretDB)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from contracts.envelope import Envelope, new_envelope
from contracts.procurement import DeliveryReceivedV1
from services.inventory.domain import DeviceSpec
from services.inventory.handlers import InventoryHandlers
from services.inventory.store import DEVICES, DeviceStore
from services.runtime.auth import Role
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from services.runtime.store.mongo import MongoStore
from tests.integration.conftest import RunningService, events_for, produce, read_topic, serve
from tests.samples import CSV_HEADER, csv_line, device_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def new_tag(prefix: str = "IT") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


async def stored(settings: Settings, query: dict[str, object]) -> list[dict[str, object]]:
    store = MongoStore(settings.mongo_url, settings.mongo_database)
    try:
        return await store.collection(DEVICES).find(query)
    finally:
        await store.close()


async def test_a_device_created_over_http_is_stored_and_announced_on_kafka_in_one_trace(
        service: RunningService) -> None:
    tag = new_tag()
    trace_id = uuid.uuid4().hex
    async with service.client() as http:
        answer = await http.post("/devices", json=device_body(tag),
                                 headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
    assert answer.status_code == 201, answer.text
    [doc] = await stored(service.settings, {"_id": tag})
    assert doc["state"] == "in_service" and doc["hardware"]["ram_mb"] == 2048  # type: ignore[index]
    records = await read_topic(service.settings.kafka_bootstrap, "inventory.devices",
                               lambda rs: bool(events_for(rs, tag)))
    [record] = [r for r in records if r.key == tag.encode()]
    envelope = Envelope.from_bytes(record.value)
    assert envelope.type == "inventory.device.registered.v1" and envelope.subject == tag
    assert envelope.data["device"]["asset_tag"] == tag
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["traceparent"].split("-")[1] == trace_id, "the event continues the request's trace"
    assert headers["ce_type"] == envelope.type


def delivery(tags: list[str], event_id: str | None = None) -> Envelope:
    body = device_body()
    data = DeliveryReceivedV1.model_validate({
        "delivery_id": "DEL-1", "order_id": "PO-1", "framework": "G-Cloud 7", "supplier": "Example Supplies",
        "received_at": datetime.now(UTC).isoformat(), "location": body["location"],
        "devices": [{"asset_tag": t, "kind": "laptop", "os": {"family": "windows", "version": "8.1"},
                     "hardware": body["hardware"]} for t in tags],
    })
    envelope = new_envelope(type="procurement.delivery.received.v1", source="/estate/procurement",
                            subject="DEL-1", time=datetime.now(UTC), data=data)
    return envelope.model_copy(update={"id": event_id}) if event_id else envelope


async def test_a_redelivered_delivery_event_has_one_effect(service: RunningService) -> None:
    tags = [new_tag("DL"), new_tag("DL")]
    event = delivery(tags)
    bootstrap = service.settings.kafka_bootstrap
    for _ in range(2):  # the same event twice, as Kafka may redeliver it
        await produce(bootstrap, "procurement.deliveries", "DEL-1", event.to_bytes())
    await produce(bootstrap, "procurement.deliveries", "DEL-1", delivery(tags).to_bytes())  # replayed anew
    records = await read_topic(bootstrap, "inventory.devices",
                               lambda rs: all(events_for(rs, t) for t in tags), timeout=90)
    await asyncio.sleep(2)  # time for any second effect to show
    records = await read_topic(bootstrap, "inventory.devices", lambda rs: all(events_for(rs, t) for t in tags))
    for tag in tags:
        assert [e["type"] for e in events_for(records, tag)] == ["inventory.device.registered.v1"]
    docs = await stored(service.settings, {"_id": {"$in": tags}})
    assert sorted(d["_id"] for d in docs) == sorted(tags)  # type: ignore[type-var]
    assert all(d["kind"] == "laptop" and d["location"]["site"] == "Hammersmith Police Station"  # type: ignore[index]
               for d in docs)


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_consumer_goes_on(
        service: RunningService) -> None:
    bootstrap = service.settings.kafka_bootstrap
    marker = uuid.uuid4().hex
    await produce(bootstrap, "procurement.deliveries", f"poison-{marker}", b"{not an envelope")
    after = new_tag("DL")
    await produce(bootstrap, "procurement.deliveries", "DEL-2", delivery([after]).to_bytes())
    group = service.settings.consumer_group_prefix + "inventory"
    dead = await read_topic(bootstrap, f"procurement.deliveries.{group}.dead-letter",
                            lambda rs: any(r.key == f"poison-{marker}".encode() for r in rs))
    [record] = [r for r in dead if r.key == f"poison-{marker}".encode()]
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["dlq-error-type"] == "ValidationError" and headers["dlq-consumer-group"] == group
    assert headers["dlq-original-topic"] == "procurement.deliveries"
    assert record.value == b"{not an envelope"
    await read_topic(bootstrap, "inventory.devices", lambda rs: bool(events_for(rs, after)), timeout=90)


async def test_a_crash_between_write_and_publish_still_publishes_once_after_restart(settings: Settings) -> None:
    tag = new_tag("CR")
    crashed = Runtime.build(settings)  # never started: its relay never runs, as if it died
    handlers = InventoryHandlers(DeviceStore(crashed.store, crashed.relay, crashed.clock), crashed.relay,
                                 crashed.clock)
    await handlers.register(DeviceSpec.model_validate(device_body(tag)))
    await crashed.store.close()
    [doc] = await stored(settings, {"_id": tag})
    assert len(doc["outbox"]) == 1  # type: ignore[arg-type]

    for _ in range(2):  # restart, and restart again: the second start must publish nothing
        async with serve(settings):
            await asyncio.sleep(0.5)
    records = await read_topic(settings.kafka_bootstrap, "inventory.devices", lambda rs: bool(events_for(rs, tag)))
    assert [e["type"] for e in events_for(records, tag)] == ["inventory.device.registered.v1"]
    [doc] = await stored(settings, {"_id": tag})
    assert doc["outbox"] == []


async def test_auth_and_bad_input_over_real_http_store_nothing_wrong(service: RunningService) -> None:
    tag = new_tag()
    async with service.client(role=None) as anonymous:
        assert (await anonymous.post("/devices", json=device_body(tag))).status_code == 401
    async with service.client(role=Role.READER) as reader:
        assert (await reader.post("/devices", json=device_body(tag))).status_code == 403
    good, dup = new_tag(), new_tag()
    body = "\n".join([CSV_HEADER, csv_line(good), csv_line(dup), csv_line(dup, os_version="8.1"),
                      csv_line(new_tag(), os_version="Windows 95"), csv_line(new_tag(), ram_mb="many")])
    async with service.client() as writer:
        report = (await writer.post("/devices/import", content=body, headers={"Content-Type": "text/csv"})).json()
        assert (report["created"], report["rejected"]) == (2, 3), report
        assert [e["line"] for e in report["errors"]] == [4, 5, 6]
        assert (await writer.get(f"/devices/{tag}")).status_code == 404
    docs = [d for d in await stored(service.settings, {}) if str(d["_id"]).startswith("IT-")]  # not deliveries
    assert sorted(d["_id"] for d in docs) == sorted([good, dup])  # type: ignore[type-var]
    assert [d["os"]["version"] for d in docs if d["_id"] == dup] == ["XP"]  # type: ignore[index]


async def test_readiness_reports_kafka_and_the_store(service: RunningService) -> None:
    async with service.client(role=None) as http:
        ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "bus": "ok"}
