"""The outbox relay on the embedded adapters: nothing lost, nothing published falsely."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from contracts.envelope import Envelope
from contracts.inventory import DeviceRegisteredV1
from services.inventory import domain
from services.inventory.domain import DeviceSpec
from services.runtime.bus import OutgoingMessage
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.memory import MemoryBus
from services.runtime.metrics import Metrics
from services.runtime.outbox import RETRY_SCAN_S, OutboxRelay, new_with_outbox, outbox_entries
from services.runtime.store.memory import MemoryStore
from services.runtime.telemetry import Telemetry
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, tzinfo=UTC)


def event_for(tag: str) -> Envelope:
    device = domain.register(DeviceSpec.model_validate(device_body(f"MPS-{tag}")), NOW).device
    return Envelope(id=f"ev-{tag}-{device.version}", type="inventory.device.registered.v1", source="/t",
                    subject=tag, time=NOW, data=DeviceRegisteredV1(device=device).model_dump(mode="json"))


class FlakyBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__(partitions=1, policy=RetryPolicy(), telemetry=Telemetry("t"), metrics=Metrics())
        self.down = False

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().publish(messages)


def relay(bus: MemoryBus, store: MemoryStore) -> OutboxRelay:
    return OutboxRelay(bus=bus, store=store, collections=["devices"], metrics=Metrics(),
                       telemetry=Telemetry("t"), scan_interval_s=60)


def published_ids(bus: MemoryBus) -> list[str]:
    return [json.loads(m.value)["id"] for m in bus.messages("inventory.devices")]


async def test_events_left_by_a_crash_are_published_once_by_the_next_relay() -> None:
    store, bus = MemoryStore(), FlakyBus()
    await store.collection("devices").insert_one(new_with_outbox({"_id": "A"}, outbox_entries([event_for("A")])))
    first = relay(bus, store)
    await first.start()
    await first.stop()
    second = relay(bus, store)
    await second.start()
    await second.stop()
    assert published_ids(bus) == ["ev-A-1"]
    assert (await store.collection("devices").find_one({"_id": "A"}))["outbox"] == []  # type: ignore[index]


async def test_clearing_removes_only_what_was_published() -> None:
    store, bus = MemoryStore(), FlakyBus()
    devices = store.collection("devices")
    r = relay(bus, store)
    await r.start()
    doc = new_with_outbox({"_id": "B"}, outbox_entries([event_for("B")]))
    await devices.insert_one(doc)
    r.submit("devices", [doc])
    await r.drain()
    later = outbox_entries([event_for("B").model_copy(update={"id": "ev-B-2"})])
    await devices.update_one({"_id": "B"}, {"$push": {"outbox": {"$each": later}}})  # lands before the clear
    await r.settle()
    assert (await devices.find_one({"_id": "B"}))["outbox"] == later  # type: ignore[index]
    await r.scan()
    await r.settle()
    await r.stop()
    assert published_ids(bus) == ["ev-B-1", "ev-B-2"]
    assert (await devices.find_one({"_id": "B"}))["outbox"] == []  # type: ignore[index]


async def test_a_failed_publish_keeps_the_events_and_a_later_scan_publishes_them() -> None:
    store, bus = MemoryStore(), FlakyBus()
    devices = store.collection("devices")
    r = relay(bus, store)
    await r.start()
    bus.down = True
    doc = new_with_outbox({"_id": "C"}, outbox_entries([event_for("C")]))
    await devices.insert_one(doc)
    r.submit("devices", [doc])
    await r.drain()  # fails inside, does not raise: the events are stored, the relay will retry
    assert published_ids(bus) == [] and len((await devices.find_one({"_id": "C"}))["outbox"]) == 1  # type: ignore[index]
    await asyncio.sleep(RETRY_SCAN_S * 1.5)  # a retry while the broker is still down fails too
    bus.down = False
    for _ in range(100):
        if published_ids(bus):
            break
        await asyncio.sleep(0.05)
    await r.settle()
    await r.stop()
    assert published_ids(bus) == ["ev-C-1"]
    assert (await devices.find_one({"_id": "C"}))["outbox"] == []  # type: ignore[index]
