"""Which topics migration listens to, and which handler each event type goes to."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.envelope import Envelope
from contracts.inventory import DEVICES_TOPIC as INVENTORY_DEVICES
from contracts.procurement import DELIVERIES_TOPIC
from services.migration.handlers import DEVICE_EVENTS, REGISTERED, UPDATED, MigrationHandlers
from services.runtime.bus import Message
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "migration"


def subscribe(runtime: Runtime, handlers: MigrationHandlers) -> None:
    """One message at a time through the processed-events ledger, or a partition's fetched
    messages together: the device events among them assessed in one go (``on_devices``, which
    needs no ledger: a device event older than the facts its record holds decides nothing), the
    others (deliveries) one by one through the ledger as usual. If a batch fails, the bus hands
    its messages one by one to the ledgered handler (retries, dead letters)."""
    group = runtime.settings.consumer_group_prefix + GROUP
    one = idempotent(group, runtime.ledger, runtime.metrics, {
        REGISTERED: handlers.on_device,
        UPDATED: handlers.on_device,
        "procurement.delivery.received.v1": handlers.on_delivery,
    })

    async def batch(messages: Sequence[Message]) -> None:
        envelopes = [Envelope.from_bytes(m.value) for m in messages]
        await handlers.on_devices([e for e in envelopes if e.type in DEVICE_EVENTS])
        for message, envelope in zip(messages, envelopes, strict=True):
            if envelope.type not in DEVICE_EVENTS:
                await one(message)

    runtime.bus.subscribe(group, [INVENTORY_DEVICES, DELIVERIES_TOPIC], one, batch_handler=batch)
