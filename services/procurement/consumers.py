"""Which topics procurement listens to, and which handler each event type goes to: migration's
replacement needs, and its own deliveries (to finish a budget spend a stop left out)."""

from __future__ import annotations

from contracts.migration import REPLACEMENTS_TOPIC
from contracts.procurement import DELIVERIES_TOPIC
from services.procurement.handlers import ProcurementHandlers
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "procurement"


def subscribe(runtime: Runtime, handlers: ProcurementHandlers) -> None:
    group = runtime.settings.consumer_group_prefix + GROUP
    runtime.bus.subscribe(group, [REPLACEMENTS_TOPIC, DELIVERIES_TOPIC], idempotent(
        group, runtime.ledger, runtime.metrics,
        {"migration.replacement.needed.v1": handlers.on_replacement_needed,
         "procurement.delivery.received.v1": handlers.on_delivery_received},
    ))
