"""Which topics reporting reads (every service's), and where each event goes."""

from __future__ import annotations

from contracts import inventory, migration, procurement
from services.reporting.handlers import ReportingHandlers
from services.runtime.bus import Message
from services.runtime.runtime import Runtime

GROUP = "reporting"
TOPICS = (inventory.DEVICES_TOPIC, migration.DEVICES_TOPIC, migration.WAVES_TOPIC, migration.POLICY_TOPIC,
          procurement.CONTRACTS_TOPIC,
          procurement.PURCHASES_TOPIC, procurement.DELIVERIES_TOPIC)


def subscribe(runtime: Runtime, handlers: ReportingHandlers) -> None:
    """Batches: each partition's fetched messages are folded together and applied in a few
    writes. No processed-events ledger: the read model is exactly-once by itself (a journal
    per partition, see store.py; and each entity's version or event ids). A message that makes
    its batch fail is handled alone (retried, then dead-lettered)."""

    async def handle(message: Message) -> str | None:
        await handlers.on_batch([message])
        return None

    runtime.bus.subscribe(runtime.settings.consumer_group_prefix + GROUP, list(TOPICS), handle,
                          batch_handler=handlers.on_batch)
