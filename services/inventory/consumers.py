"""Which topics inventory listens to, and which handler each event type goes to."""

from __future__ import annotations

from contracts.procurement import DELIVERIES_TOPIC
from services.inventory.handlers import InventoryHandlers
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "inventory"


def subscribe(runtime: Runtime, handlers: InventoryHandlers) -> None:
    group = runtime.settings.consumer_group_prefix + GROUP
    runtime.bus.subscribe(group, [DELIVERIES_TOPIC], idempotent(
        group, runtime.ledger, runtime.metrics,
        {"procurement.delivery.received.v1": handlers.on_delivery},
    ))
