"""Transactional outbox without transactions: pending events live inside the changed document.

A handler writes the new state and the events announcing it in ONE single-document write
(the document's ``outbox`` array). The relay publishes them (acks=all) and afterwards
removes exactly the entries it published (``$pullAll`` of those entries, by ``_id``), so
events that a concurrent change appended meanwhile stay. A crash between the write and the
publish loses nothing: the events are still in the document, and the relay's scan at start
(and after any failed publish) finds and publishes them.

Clearing is housekeeping, done by a background task after publication: it costs one
single-document update per changed document, which a bulk import should not wait for
(FerretDB 1.x turns any filter other than a lone ``_id`` into a full scan, so clearing must
go document by document). Until an entry is cleared the relay remembers it was published,
so its scans do not publish it again; a crash before the clear republishes it on restart.
Publishing is therefore at-least-once, which is why consumers deduplicate on the event id.
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
HAS_PENDING = {f"{OUTBOX}.0": {"$exists": True}}
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")
RETRY_SCAN_S = 1.0
"""After a failed publish, the relay scans the store again this soon (then at this pace)."""
CLEAR_BATCH = 200
CLEAR_AFTER_QUIET_S = 0.5
"""Clearing waits until publishing has been quiet this long: during a bulk import the store's
time goes to the import, and the clearing catches up afterwards."""


def outbox_entries(envelopes: Iterable[Envelope], trace: dict[str, str] | None = None) -> list[Document]:
    """Pending-event entries for the events of one change, with the trace context (the
    current one unless given). The event is kept as its JSON text: exactly the bytes that
    will be published, and cheap to store and copy."""
    trace = current_trace_carrier() if trace is None else trace
    return [
        {"id": e.id, "topic": event_type(e.type).topic, "key": e.subject, "type": e.type,
         "event": e.model_dump_json(), "trace": trace}
        for e in envelopes
    ]


def new_with_outbox(doc: Document, entries: list[Document]) -> Document:
    """A document to insert, carrying the events that announce it."""
    return {**doc, OUTBOX: entries}


def set_with_outbox(changes: Document, entries: list[Document]) -> Document:
    """An update that sets ``changes`` and appends the events that announce them."""
    return {"$set": changes, "$push": {OUTBOX: {"$each": entries}}}


@dataclass(frozen=True, slots=True)
class _Pending:
    collection: str
    doc_id: Any
    entries: list[Document]


class OutboxRelay:
    def __init__(self, *, bus: Bus, store: Store, collections: Sequence[str], metrics: Metrics,
                 telemetry: Telemetry, batch_size: int = 1000, scan_interval_s: float = 300.0) -> None:
        self._bus = bus
        self._store = store
        self._collections = list(collections)
        self._metrics = metrics
        self._telemetry = telemetry
        self._batch_size = batch_size
        self._scan_interval_s = scan_interval_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._to_clear: asyncio.Queue[_Pending] = asyncio.Queue()
        self._unpublished = 0
        self._published: set[str] = set()
        """Ids of events published but not yet cleared from their documents."""
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = asyncio.Lock()
        self._last_publish = 0.0
        self._rescan = False

    def watch(self, collection: str) -> None:
        if collection not in self._collections:
            self._collections.append(collection)

    def submit(self, collection: str, docs: Iterable[Document]) -> None:
        """Hand freshly written documents (``_id`` and the new ``outbox`` entries) to the
        relay for immediate publication."""
        for doc in docs:
            if doc.get(OUTBOX):
                self._queue.put_nowait(_Pending(collection, doc["_id"], doc[OUTBOX]))
                self._unpublished += len(doc[OUTBOX])
        self._report_backlog()

    async def start(self) -> None:
        await self.scan()  # whatever a crashed predecessor left behind
        self._tasks = [asyncio.create_task(self._run(), name="outbox-relay"),
                       asyncio.create_task(self._clear_continuously(), name="outbox-clearer")]

    async def stop(self, clear_timeout_s: float = 30.0) -> None:
        """Stop; first finish publishing what was submitted and, within a time limit,
        clearing what was published (what is left is published again after restart)."""
        self._last_publish = float("-inf")  # no more waiting for quiet: clear now
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), clear_timeout_s)
            await asyncio.wait_for(self._to_clear.join(), clear_timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def drain(self) -> None:
        """Publish everything submitted so far, now, in this task."""
        while not self._queue.empty():
            await self._publish_queued()
        async with self._busy:  # and wait for a batch the relay task has in flight
            pass

    async def settle(self) -> None:
        """Publish and clear everything submitted so far (tests, shutdown)."""
        await self.drain()
        self._last_publish = float("-inf")
        await self._to_clear.join()

    async def _run(self) -> None:
        while True:
            timeout = RETRY_SCAN_S if self._rescan else self._scan_interval_s
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                await self._scan_quietly()
                continue
            await self._publish_queued(first)

    async def _scan_quietly(self) -> None:
        self._rescan = False
        try:
            await self.scan()
        except Exception:  # noqa: BLE001 - the events stay stored; the next scan retries
            log.exception("outbox scan failed; retrying in %.0f s", RETRY_SCAN_S)
            self._rescan = True

    async def _publish_queued(self, first: _Pending | None = None) -> None:
        batch: list[_Pending] = [first] if first is not None else []
        events = len(first.entries) if first is not None else 0
        while not self._queue.empty() and events < self._batch_size:
            batch.append(self._queue.get_nowait())
            events += len(batch[-1].entries)
        self._unpublished -= events
        try:
            await self._publish(batch)
        except Exception:  # noqa: BLE001 - stored, so not lost: a scan publishes them soon
            log.exception("publishing %d events failed; they stay stored and a scan retries them", events)
            self._rescan = True

    async def scan(self) -> int:
        """Publish pending events found in the store; returns how many documents had some."""
        found = 0
        for name in self._collections:
            docs = await self._store.collection(name).find(HAS_PENDING, projection=[OUTBOX])
            pending = []
            for doc in docs:
                entries = [e for e in doc.get(OUTBOX, []) if e["id"] not in self._published]
                if entries:
                    pending.append(_Pending(name, doc["_id"], entries))
            found += len(pending)
            for start in range(0, len(pending), self._batch_size):
                await self._publish(pending[start:start + self._batch_size])
        if found:
            log.info("outbox scan published events of %d document(s)", found)
        return found

    async def _publish(self, batch: Sequence[_Pending]) -> None:
        if not batch:
            return
        async with self._busy:
            await self._bus.publish(self._messages([e for p in batch for e in p.entries]))
            for p in batch:
                for e in p.entries:
                    self._metrics.events_published.labels(e["topic"], e["type"]).inc()
                    self._published.add(e["id"])
                self._to_clear.put_nowait(p)
            self._last_publish = asyncio.get_running_loop().time()
        self._report_backlog()

    async def _clear_continuously(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._to_clear.get()]
            while loop.time() - self._last_publish < CLEAR_AFTER_QUIET_S:  # publishing comes first
                await asyncio.sleep(CLEAR_AFTER_QUIET_S / 4)
            while not self._to_clear.empty() and len(batch) < CLEAR_BATCH:
                batch.append(self._to_clear.get_nowait())
            try:
                await self._clear(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - published already; a restart republishes at worst
                log.exception("clearing %d published outbox entries failed; retrying", len(batch))
                for p in batch:
                    self._to_clear.put_nowait(p)
                await asyncio.sleep(1)
            finally:
                for _ in batch:
                    self._to_clear.task_done()
            self._report_backlog()

    async def _clear(self, batch: Sequence[_Pending]) -> None:
        by_collection: dict[str, list[_Pending]] = {}
        for p in batch:
            by_collection.setdefault(p.collection, []).append(p)
        for name, published in by_collection.items():
            await self._store.collection(name).bulk_update(
                [UpdateOp({"_id": p.doc_id}, {"$pullAll": {OUTBOX: p.entries}}) for p in published])
            for p in published:
                self._published.difference_update(e["id"] for e in p.entries)

    def _report_backlog(self) -> None:
        self._metrics.outbox_backlog.labels("unpublished").set(self._unpublished)
        self._metrics.outbox_backlog.labels("uncleared").set(len(self._published))

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
                messages[index] = OutgoingMessage(entry["topic"], entry["key"], entry["event"].encode(),
                                                  (*headers, ("ce_type", entry["type"].encode())))
        return [m for m in messages if m is not None]
