"""Transactional outbox without transactions: pending events live inside the changed document.

A handler writes the new state and the events announcing it in ONE single-document write
(``outbox`` array + ``outbox_pending`` flag). The relay then publishes them and removes
exactly the entries it published (``$pullAll`` of those entries), so events a concurrent change appended
meanwhile stay; the flag is cleared only where the outbox is then empty. A crash between
the write and the publish loses nothing: the events are still in the document and the
relay's scan publishes them after restart.

Publishing is at-least-once (a crash after publish but before the clear republishes), which
is why consumers deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from contracts.envelope import Envelope
from contracts.registry import event_type
from services.runtime.bus import Bus, OutgoingMessage
from services.runtime.metrics import Metrics
from services.runtime.store import Document, Store, UpdateOp
from services.runtime.telemetry import (
    Telemetry,
    context_from_headers,
    current_trace_carrier,
    headers_from_carrier,
)

log = logging.getLogger(__name__)

OUTBOX = "outbox"
PENDING = "outbox_pending"
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")


def outbox_entries(envelopes: Iterable[Envelope]) -> list[Document]:
    """Pending-event entries for the events of one change, with the current trace context.
    The event is kept as its JSON text: exactly the bytes that will be published, and cheap
    to store and copy."""
    trace = current_trace_carrier()
    return [
        {"id": e.id, "topic": event_type(e.type).topic, "key": e.subject, "type": e.type,
         "event": e.model_dump_json(), "trace": trace}
        for e in envelopes
    ]


def new_with_outbox(doc: Document, entries: list[Document]) -> Document:
    """A document to insert, carrying the events that announce it."""
    return {**doc, OUTBOX: entries, PENDING: True}


def set_with_outbox(changes: Document, entries: list[Document]) -> Document:
    """An update that sets ``changes`` and appends the events that announce them."""
    return {"$set": {**changes, PENDING: True}, "$push": {OUTBOX: {"$each": entries}}}


@dataclass(frozen=True, slots=True)
class _Pending:
    collection: str
    doc_id: Any
    entries: list[Document]


class OutboxRelay:
    def __init__(self, *, bus: Bus, store: Store, collections: Sequence[str], metrics: Metrics,
                 telemetry: Telemetry, batch_size: int = 1000, scan_interval_s: float = 10.0) -> None:
        self._bus = bus
        self._store = store
        self._collections = list(collections)
        self._metrics = metrics
        self._telemetry = telemetry
        self._batch_size = batch_size
        self._scan_interval_s = scan_interval_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()

    def watch(self, collection: str) -> None:
        if collection not in self._collections:
            self._collections.append(collection)

    def submit(self, collection: str, docs: Iterable[Document]) -> None:
        """Hand freshly written documents to the relay for immediate publication."""
        for doc in docs:
            if doc.get(OUTBOX):
                self._queue.put_nowait(_Pending(collection, doc["_id"], doc[OUTBOX]))

    async def start(self) -> None:
        await self.scan()  # whatever a crashed predecessor left behind
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> None:
        """Publish everything submitted so far, now, in this task."""
        while not self._queue.empty():
            await self._publish_queued()
        async with self._busy:  # and wait for a batch the relay task has in flight
            pass

    async def _run(self) -> None:
        while True:
            try:
                try:
                    first = await asyncio.wait_for(self._queue.get(), self._scan_interval_s)
                except TimeoutError:
                    await self.scan()
                    continue
                await self._publish_queued(first)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the events stay stored; the scan retries them
                log.exception("outbox relay failed; events stay pending and will be retried")
                await asyncio.sleep(1)

    async def _publish_queued(self, first: _Pending | None = None) -> None:
        batch: list[_Pending] = [first] if first is not None else []
        events = len(first.entries) if first is not None else 0
        while not self._queue.empty() and events < self._batch_size:
            batch.append(self._queue.get_nowait())
            events += len(batch[-1].entries)
        try:
            await self._publish(batch)
        except Exception:
            log.exception("publishing %d outbox documents failed; the scan will retry", len(batch))
            raise

    async def scan(self) -> int:
        """Publish pending events found in the store; returns how many documents had some."""
        found = 0
        for name in self._collections:
            collection = self._store.collection(name)
            while True:
                docs = await collection.find({PENDING: True}, projection=[OUTBOX],
                                             limit=self._batch_size)
                pending = [_Pending(name, d["_id"], d.get(OUTBOX, [])) for d in docs]
                self._metrics.outbox_backlog.labels(name).set(len(pending))
                if not pending:
                    break
                found += len(pending)
                await self._publish(pending)
                if len(pending) < self._batch_size:
                    break
        return found

    async def _publish(self, batch: Sequence[_Pending]) -> None:
        if not batch:
            return
        async with self._busy:
            await self._bus.publish(self._messages([e for p in batch for e in p.entries]))
            for p in batch:
                for e in p.entries:
                    self._metrics.events_published.labels(e["topic"], e["type"]).inc()
            by_collection: dict[str, list[_Pending]] = {}
            for p in batch:
                by_collection.setdefault(p.collection, []).append(p)
            for name, published in by_collection.items():
                await self._clear(name, published)

    async def _clear(self, collection_name: str, published: Sequence[_Pending]) -> None:
        collection = self._store.collection(collection_name)
        await collection.bulk_update([
            UpdateOp({"_id": p.doc_id}, {"$pullAll": {OUTBOX: p.entries}})
            for p in published
        ])
        await collection.update_many({"_id": {"$in": [p.doc_id for p in published]}, OUTBOX: []},
                                     {"$set": {PENDING: False}})

    def _messages(self, entries: Sequence[Document]) -> list[OutgoingMessage]:
        """Messages for the entries, in order; one producer span per originating trace (an
        import's thousands of events share one), whose context every message carries."""
        by_trace: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for index, entry in enumerate(entries):
            by_trace.setdefault(tuple(sorted((entry.get("trace") or {}).items())), []).append(index)
        messages: list[OutgoingMessage | None] = [None] * len(entries)
        for carrier, indexes in by_trace.items():
            first = entries[indexes[0]]
            with self._telemetry.tracer.start_as_current_span(
                f"{first['topic']} publish", context=context_from_headers(headers_from_carrier(dict(carrier))),
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.destination.name": first["topic"],
                            "messaging.batch.message_count": len(indexes)},
            ):
                headers = (*headers_from_carrier(current_trace_carrier()), CONTENT_TYPE_HEADER)
            for index in indexes:
                entry = entries[index]
                value = entry["event"].encode()
                messages[index] = OutgoingMessage(entry["topic"], entry["key"], value,
                                                  (*headers, ("ce_type", entry["type"].encode())))
        return [m for m in messages if m is not None]
