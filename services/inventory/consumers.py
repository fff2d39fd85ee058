"""Which topics inventory listens to, and which handler each event type goes to."""

from __future__ import annotations

from contracts.migration import DEVICES_TOPIC as MIGRATION_DEVICES
from contracts.procurement import DELIVERIES_TOPIC
from services.inventory.handlers import InventoryHandlers
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "inventory"


def subscribe(runtime: Runtime, handlers: InventoryHandlers) -> None:
    group = runtime.settings.consumer_group_prefix + GROUP
    migration = {f"migration.device.{kind}.v1": handlers.on_migration
                 for kind in ("started", "migrated", "rolled_back", "replacement_paired", "disposal_requested")}
    runtime.bus.subscribe(group, [DELIVERIES_TOPIC, MIGRATION_DEVICES], idempotent(
        group, runtime.ledger, runtime.metrics,
        {"procurement.delivery.received.v1": handlers.on_delivery, **migration},
    ))
