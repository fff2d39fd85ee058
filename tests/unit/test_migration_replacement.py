"""The replacement loop in migration, on the embedded store: a delivered device is paired with an
old device awaiting one of its kind at that site (once, whatever the redeliveries), and only a
replaced device's sanitisation record is accepted for disposal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from contracts.common import Sanitisation
from contracts.envelope import Envelope, new_envelope
from contracts.procurement import DeliveryReceivedV1
from services.inventory import domain as inventory
from services.inventory.domain import DeviceSpec
from services.migration.executor import SimulatedExecutor
from services.migration.handlers import MigrationHandlers
from services.migration.sample_policy import sample_policy
from services.migration.store import DeviceRecords, Policies, Waves
from services.runtime.clock import FixedClock
from services.runtime.errors import Conflict
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, 9, tzinfo=UTC)
SITE = "Hammersmith Police Station"
SANITISED = Sanitisation(method="NIST 800-88 purge", certificate_id="SAN-2015-0042", performed_on=date(2015, 8, 3),
                         operator="Disposal Services")


@pytest.fixture
async def handlers() -> AsyncIterator[MigrationHandlers]:
    runtime = Runtime.build(Settings(), clock=FixedClock(NOW))
    relay, clock = runtime.relay, runtime.clock
    found = MigrationHandlers(runtime.store, DeviceRecords(runtime.store, relay, clock),
                              Waves(runtime.store, relay, clock), Policies(runtime.store, relay, clock), clock,
                              SimulatedExecutor())
    await found.set_policy(sample_policy())
    yield found
    await runtime.store.close()


def registered(tag: str, **over: Any) -> Envelope:
    change = inventory.register(DeviceSpec.model_validate(device_body(tag, **over)), NOW)
    [(name, data)] = change.events
    return new_envelope(type=name, source="/estate/inventory", subject=tag, time=NOW, data=data)


def delivered(tags: list[str], kind: str = "laptop", site: str = SITE) -> Envelope:
    body = device_body()
    data = DeliveryReceivedV1.model_validate({
        "delivery_id": "DEL-7", "order_id": "PO-7", "framework": "G-Cloud 7", "supplier": "Example Supplies",
        "received_at": NOW.isoformat(), "location": {**body["location"], "site": site},
        "devices": [{"asset_tag": t, "kind": kind, "os": {"family": "windows", "version": "8.1"},
                     "hardware": body["hardware"]} for t in tags]})
    return new_envelope(type="procurement.delivery.received.v1", source="/estate/procurement", subject="DEL-7",
                        time=NOW, data=data)


async def outbox_types(handlers: MigrationHandlers, tag: str) -> list[str]:
    doc = await handlers.devices.collection.find_one({"_id": tag})
    assert doc is not None
    return [e["type"] for e in doc.get("outbox", [])]


async def old_devices(handlers: MigrationHandlers) -> list[str]:
    """Two devices to dispose of (a laptop replaces each) and one to upgrade, at one site."""
    weak = {**device_body()["hardware"], "ram_mb": 1024}
    tags = ["MPS-D-800001", "MPS-D-800002"]
    for tag in tags:
        await handlers.on_device(registered(tag, hardware=weak))
    await handlers.on_device(registered("MPS-D-800003"))
    return tags


async def test_a_delivered_device_is_paired_once_with_the_first_device_awaiting_its_kind(
        handlers: MigrationHandlers) -> None:
    first, second = await old_devices(handlers)
    assert (await handlers.device(first)).need_id == f"NEED-{first}"
    event = delivered(["MPS-L-900001"])
    for _ in range(2):  # delivered twice: the same pair, nothing more
        await handlers.on_delivery(event)
    await handlers.on_delivery(delivered(["MPS-L-900001"]))  # and replayed under a new id
    paired = await handlers.device(first)
    assert paired.replaced_by == "MPS-L-900001"
    assert (await outbox_types(handlers, first)).count("migration.device.replacement_paired.v1") == 1
    assert (await handlers.device(second)).replaced_by is None
    assert (await handlers.device("MPS-D-800003")).replaced_by is None

    await handlers.on_delivery(delivered(["MPS-L-900002", "MPS-L-900003"]))
    assert (await handlers.device(second)).replaced_by == "MPS-L-900002"
    assert (await handlers.devices.load("MPS-L-900003")) is None  # nobody left awaiting one


async def test_a_delivery_of_another_kind_or_at_another_site_pairs_nothing(handlers: MigrationHandlers) -> None:
    first, _ = await old_devices(handlers)
    await handlers.on_delivery(delivered(["MPS-D-900010"], kind="desktop"))
    await handlers.on_delivery(delivered(["MPS-L-900011"], site="Camden Police Station"))
    assert (await handlers.device(first)).replaced_by is None
    assert "migration.device.replacement_paired.v1" not in await outbox_types(handlers, first)


async def test_only_a_replaced_device_is_disposed_of_and_its_record_is_kept(handlers: MigrationHandlers) -> None:
    first, second = await old_devices(handlers)
    with pytest.raises(Conflict, match="not replaced yet"):
        await handlers.request_disposal(first, SANITISED, None)
    await handlers.on_delivery(delivered(["MPS-L-900001"]))
    after = await handlers.request_disposal(first, SANITISED, None)
    assert after.sanitisation == SANITISED
    again = await handlers.request_disposal(first, SANITISED, None)  # the same record again: no change
    assert again.version == after.version
    assert (await outbox_types(handlers, first)).count("migration.device.disposal_requested.v1") == 1
    other = SANITISED.model_copy(update={"certificate_id": "SAN-2015-0099"})
    with pytest.raises(Conflict, match="sanitised already"):
        await handlers.request_disposal(first, other, None)
    with pytest.raises(Conflict, match="not replaced yet"):
        await handlers.request_disposal(second, SANITISED, None)
