"""Idempotent consumption: an event delivered twice has its effect once.

Two layers, both needed because there are no multi-document transactions:
1. the handler writes its effect keyed by something the event fixes (a unique id, or a
   ``$setOnInsert`` upsert), so re-running it after a crash changes nothing;
2. a ledger of (consumer group, event id) lets a plain redelivery skip the handler
   without touching the effect at all.

An effect that is not naturally idempotent (a counter, a projection) records the event id
inside its own document, in the same single-document write: ``apply_once``.

The ledger is kept for ``ledger_retention_days`` (longer than any redelivery):
``purge_expired`` forgets older entries (the runtime runs it hourly).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from contracts.envelope import Envelope
from services.runtime.bus import Handler, Message
from services.runtime.clock import Clock
from services.runtime.metrics import Metrics
from services.runtime.store import Collection, DuplicateKeyError, Store

log = logging.getLogger(__name__)

LEDGER = "processed_events"
PROCESSED_AT = "processed_at"
"""When the event was processed: a datetime (a BSON date on MongoDB/FerretDB), which orders
correctly on both stores; ``purge`` filters on it."""
APPLIED_EVENTS = "applied_events"
"""In an effect's own document (``apply_once``): the ids of the last events applied to it."""
DUPLICATE = "duplicate"
"""What an ``idempotent`` handler returns when it skipped an event this group had seen."""
APPLY_ONCE_ATTEMPTS = 3

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
                "type": envelope.type, PROCESSED_AT: self._clock.now(),
            })
        except DuplicateKeyError:
            log.info("event %s was recorded by a concurrent delivery for %s", envelope.id, group)

    async def purge(self, older_than: datetime) -> int:
        """Forget the events processed before ``older_than``; returns how many entries went.
        (Entries written before ``processed_at`` was a date carry it as ISO-8601 text in UTC,
        which orders as text; they are purged by the same cutoff.)"""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        cutoff = older_than.astimezone(UTC)
        return await self._collection.delete_many({"$or": [
            {PROCESSED_AT: {"$lt": cutoff}},
            {PROCESSED_AT: {"$lt": cutoff.isoformat()}},
        ]})


async def purge_expired(ledger: ProcessedEvents, clock: Clock, retention: timedelta) -> None:
    """Forget ledger entries older than ``retention`` (longer than any redelivery)."""
    if retention <= timedelta(0):
        raise ValueError("the retention must be positive")
    purged = await ledger.purge(clock.now() - retention)
    if purged:
        log.info("purged %d processed-events ledger entries older than %s", purged, retention)


async def apply_once(collection: Collection, doc_id: Any, event_id: str, update: Mapping[str, Any],
                     *, keep: int = 1000) -> bool:
    """Apply ``update`` (update operators) to document ``doc_id`` unless event ``event_id``
    was applied to it already, recording the id in the document's ``applied_events`` in the
    same single-document write (upserting the document if it does not exist). Returns True
    if it applied the update, False if the event had been applied before. The document keeps
    the last ``keep`` event ids: an event older than that would apply again."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    if not update or not all(op.startswith("$") for op in update):
        raise ValueError("apply_once needs an update made of operators such as $inc or $set")
    if any(isinstance(fields, Mapping) and any(p.split(".")[0] == APPLIED_EVENTS for p in fields)
           for fields in update.values()):
        raise ValueError(f"{APPLIED_EVENTS} is apply_once's own field; the update must not touch it")
    pushes = dict(update.get("$push") or {})
    pushes[APPLIED_EVENTS] = {"$each": [event_id], "$slice": -keep}
    combined = {**update, "$push": pushes}
    for _ in range(APPLY_ONCE_ATTEMPTS):
        try:
            after = await collection.find_one_and_update(
                {"_id": doc_id, APPLIED_EVENTS: {"$ne": event_id}}, combined, upsert=True)
        except DuplicateKeyError:
            # The document exists and already holds the event (so the filter missed and the
            # upsert collided with it) - or a concurrent first write created it just now.
            doc = await collection.find_one({"_id": doc_id}, projection=[APPLIED_EVENTS])
            if doc is not None and event_id in (doc.get(APPLIED_EVENTS) or ()):
                return False
            continue
        applied = (after or {}).get(APPLIED_EVENTS) or []
        if len(applied) > keep:
            # FerretDB 1.x ignores $push's $slice: drop the oldest ids by value instead (an
            # exact $pullAll by _id; harmless if a concurrent apply trims the same ones).
            await collection.update_one({"_id": doc_id}, {"$pullAll": {APPLIED_EVENTS: applied[:-keep]}})
        return True
    raise DuplicateKeyError(f"{collection.name}: could not apply event {event_id} to {doc_id!r}")


def idempotent(group: str, ledger: ProcessedEvents, metrics: Metrics,
               handlers: dict[str, EnvelopeHandler]) -> Handler:
    """A bus handler that parses the envelope, skips what this group has seen, and
    dispatches by event type. Unknown types are ignored (other services' events share
    topics); an unparseable message raises and is dead-lettered. It returns ``DUPLICATE``
    ("duplicate") when it skipped an event this group had seen, else None; the delivery
    layer counts the outcome from that (``metrics`` is no longer used here)."""

    async def handle(message: Message) -> str | None:
        envelope = Envelope.from_bytes(message.value)
        handler = handlers.get(envelope.type)
        if handler is None:
            return None
        if await ledger.seen(group, envelope.id):
            return DUPLICATE
        await handler(envelope)
        await ledger.record(group, envelope)
        return None

    return cast(Handler, handle)
