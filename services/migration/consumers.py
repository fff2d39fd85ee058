"""Which topics migration listens to, and which handler each event type goes to."""

from __future__ import annotations

from contracts.inventory import DEVICES_TOPIC as INVENTORY_DEVICES
from contracts.procurement import DELIVERIES_TOPIC
from services.migration.handlers import MigrationHandlers
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "migration"


def subscribe(runtime: Runtime, handlers: MigrationHandlers) -> None:
    group = runtime.settings.consumer_group_prefix + GROUP
    runtime.bus.subscribe(group, [INVENTORY_DEVICES, DELIVERIES_TOPIC], idempotent(
        group, runtime.ledger, runtime.metrics, {
            "inventory.device.registered.v1": handlers.on_device,
            "inventory.device.updated.v1": handlers.on_device,
            "procurement.delivery.received.v1": handlers.on_delivery,
        }))
