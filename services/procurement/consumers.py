"""Which topics procurement listens to, and which handler each event type goes to: migration's
replacement needs, and its own deliveries (to finish a budget spend a stop left out)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.envelope import Envelope
from contracts.migration import REPLACEMENTS_TOPIC
from contracts.procurement import DELIVERIES_TOPIC
from services.procurement.handlers import ProcurementHandlers
from services.runtime.bus import Message
from services.runtime.idempotency import idempotent
from services.runtime.runtime import Runtime

GROUP = "procurement"
NEEDED = "migration.replacement.needed.v1"


def subscribe(runtime: Runtime, handlers: ProcurementHandlers) -> None:
    """One message at a time through the processed-events ledger, or a partition's fetched
    messages together: the replacement needs among them placed in one go (``on_replacement_needs``,
    which needs no ledger: a need the drafts hold already is left out), the deliveries one by one
    through the ledger. If a batch fails, the bus hands its messages one by one to the ledgered
    handler (retries, dead letters)."""
    group = runtime.settings.consumer_group_prefix + GROUP
    one = idempotent(group, runtime.ledger, runtime.metrics, {
        NEEDED: handlers.on_replacement_needed,
        "procurement.delivery.received.v1": handlers.on_delivery_received,
    })

    async def batch(messages: Sequence[Message]) -> None:
        envelopes = [Envelope.from_bytes(m.value) for m in messages]
        await handlers.on_replacement_needs([e for e in envelopes if e.type == NEEDED])
        for message, envelope in zip(messages, envelopes, strict=True):
            if envelope.type != NEEDED:
                await one(message)

    runtime.bus.subscribe(group, [REPLACEMENTS_TOPIC, DELIVERIES_TOPIC], one, batch_handler=batch)
