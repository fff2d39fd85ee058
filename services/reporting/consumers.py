"""Which topics reporting reads (every service's), and where each event goes."""

from __future__ import annotations

from contracts import inventory, migration, procurement
from contracts.envelope import Envelope
from services.reporting.handlers import ReportingHandlers
from services.runtime.bus import Message
from services.runtime.runtime import Runtime

GROUP = "reporting"
TOPICS = (inventory.DEVICES_TOPIC, migration.DEVICES_TOPIC, procurement.CONTRACTS_TOPIC,
          procurement.PURCHASES_TOPIC, procurement.DELIVERIES_TOPIC)


def subscribe(runtime: Runtime, handlers: ReportingHandlers) -> None:
    """No processed-events ledger here: the read model is idempotent by itself (each entity's
    version or event ids, and each document's applied events), which saves two store round
    trips an event."""

    async def handle(message: Message) -> str | None:
        await handlers.on_event(Envelope.from_bytes(message.value))
        return None

    runtime.bus.subscribe(runtime.settings.consumer_group_prefix + GROUP, list(TOPICS), handle)
