"""Idempotent consumption: an event delivered twice has its effect once.

Two layers, both needed because there are no multi-document transactions:
1. the handler writes its effect keyed by something the event fixes (a unique id, or a
   ``$setOnInsert`` upsert), so re-running it after a crash changes nothing;
2. a ledger of (consumer group, event id) lets a plain redelivery skip the handler
   without touching the effect at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from contracts.envelope import Envelope
from services.runtime.bus import Handler, Message
from services.runtime.clock import Clock
from services.runtime.metrics import Metrics
from services.runtime.store import DuplicateKeyError, Store

log = logging.getLogger(__name__)

LEDGER = "processed_events"

EnvelopeHandler = Callable[[Envelope], Awaitable[None]]


class ProcessedEvents:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._collection = store.collection(LEDGER)
        self._clock = clock

    @staticmethod
    def _key(group: str, event_id: str) -> str:
        return f"{group}:{event_id}"

    async def seen(self, group: str, event_id: str) -> bool:
        return await self._collection.find_one({"_id": self._key(group, event_id)}) is not None

    async def record(self, group: str, envelope: Envelope) -> None:
        try:
            await self._collection.insert_one({
                "_id": self._key(group, envelope.id), "group": group, "event_id": envelope.id,
                "type": envelope.type, "processed_at": self._clock.now().isoformat(),
            })
        except DuplicateKeyError:
            log.info("event %s was recorded by a concurrent delivery for %s", envelope.id, group)


def idempotent(group: str, ledger: ProcessedEvents, metrics: Metrics,
               handlers: dict[str, EnvelopeHandler]) -> Handler:
    """A bus handler that parses the envelope, skips what this group has seen, and
    dispatches by event type. Unknown types are ignored (other services' events share
    topics); an unparseable message raises and is dead-lettered."""

    async def handle(message: Message) -> None:
        envelope = Envelope.from_bytes(message.value)
        handler = handlers.get(envelope.type)
        if handler is None:
            return
        if await ledger.seen(group, envelope.id):
            metrics.events_consumed.labels(message.topic, group, "duplicate").inc()
            return
        await handler(envelope)
        await ledger.record(group, envelope)

    return handle
