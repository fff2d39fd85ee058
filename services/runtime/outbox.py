"""The outbox relay (what writers store: outbox_entries.py; leases: outbox_lease.py; messages:
outbox_messages.py).

Transactional outbox without transactions: pending events live inside the changed document.

A handler writes the new state and the events announcing it in ONE single-document write
(the document's ``outbox`` array, appended in stored order). The relay publishes them and
then removes exactly what it published (``$pullAll`` by ``_id``), so a crash between the
write and the publish loses nothing.

Order. For any one document, events reach the bus in the order they were stored, under
broker outages, concurrent writers and several replicas:

* One publisher per collection. Each replica's relay competes for a lease document
  (``outbox_leases``, keyed by collection, renewed at a quarter of ``lease_s``); only the
  holder publishes, and only while its lease has at least half its term left. A replica
  that does not hold the lease leaves a marker (``outbox_pending_<collection>``, keyed by the
  document's ``_id``) for each document it wrote; the holder polls the markers.
* The holder publishes a document's entries in stored order, one entry per document per
  round, and moves to the next entry only after the broker acknowledged the previous one.
  A failed round keeps everything where it was and is retried after a backoff, so a later
  write can never overtake an earlier one that timed out.
* The holder trusts the entries it was handed only for a document it inserted itself
  (their ``seq`` starts at 1, so nothing came before them); anything else is read back from
  the store by ``_id`` before publishing, so another replica's write in between is seen.

Duplicates. Publishing is at-least-once. After each acknowledged round the holder writes
one record of the event ids it published (``outbox_published``); a relay that takes over
(after a crash or a lease move) clears those entries instead of publishing them again, so a
crash republishes at most the round in flight. Clearing is background housekeeping (one
update statement per document, which a bulk import should not wait for); every clear is
checked, and a
clear that matched nothing although the entries are still stored is counted
(``outbox_clear_misses_total``) and logged.

Costs on FerretDB 1.x (which scans the whole collection for any filter but a lone ``_id``):
the full scan for pending events runs when a relay takes a lease and then every
``scan_interval_s``; between scans the holder reads only documents by ``_id`` and the small
marker, lease and published-record collections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.runtime import outbox_lease
from services.runtime.aio import cancel_and_wait, still_running
from services.runtime.bus import Bus
from services.runtime.metrics import Metrics
from services.runtime.outbox_entries import (
    HAS_PENDING,
    OUTBOX,
    PUBLISHED,
    markers,
    new_with_outbox,
    outbox_entries,
    set_with_outbox,
)
from services.runtime.outbox_messages import messages_for
from services.runtime.store import Document, Store
from services.runtime.telemetry import Telemetry

__all__ = ["OUTBOX", "OutboxRelay", "new_with_outbox", "outbox_entries", "set_with_outbox"]

log = logging.getLogger(__name__)

CLEAR_BATCH = 200
CLEAR_STATEMENT = 90
"""Documents cleared per statement (``update_many`` over their ``_id``s): about half the cost
per document of one statement each on FerretDB. The store must apply each update atomically
per document, as MongoDB does; stock FerretDB 1.24 does not, and lost a versioned write racing
a clear (deploy/local/ferretdb.sh patches 5-7; ``benchmarks/ferretdb_lost_update.py``)."""
CLEAR_AFTER_QUIET_S = 2.0
"""Clearing waits until publishing has been quiet this long: during a bulk import the store's
time goes to the import, and the clearing catches up afterwards."""
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 5.0


Key = tuple[str, Any]
"""(collection, document _id)"""


@dataclass(slots=True)
class _Pending:
    entries: list[Document] = field(default_factory=list)
    """Entries known to be next for this document, in stored order."""
    stale: bool = False
    """The store may hold entries after ``entries`` that this relay has not read yet."""


@dataclass(slots=True)
class _Lease:
    held_until: float = float("-inf")
    """Loop time until which this relay holds the collection's lease."""
    needs_scan: bool = True


class OutboxRelay:
    def __init__(self, *, bus: Bus, store: Store, collections: Sequence[str], metrics: Metrics,
                 telemetry: Telemetry, batch_size: int = 1000, scan_interval_s: float = 300.0,
                 lease_s: float = 10.0, poll_interval_s: float = 0.2, replica: str | None = None) -> None:
        self._bus = bus
        self._store = store
        self._metrics = metrics
        self._telemetry = telemetry
        self._batch_size = batch_size
        self._scan_interval_s = scan_interval_s
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self.replica = replica or uuid.uuid4().hex
        self._leases: dict[str, _Lease] = {}
        for name in collections:
            self.watch(name)
        self._pending: dict[Key, _Pending] = {}
        self._to_mark: dict[str, set[Any]] = {}
        self._to_clear: asyncio.Queue[tuple[Key, list[Document]]] = asyncio.Queue()
        self._published: dict[str, str] = {}
        """Ids of events published but not yet cleared -> the published record naming them."""
        metrics.outbox_uncleared.set_function(lambda: len(self._published))
        self._clears = 0
        """Clears completed so far (numbers them)."""
        self._cleared: dict[str, int] = {}
        """Ids of events cleared while a read of outboxes was in flight -> the number of their
        clear: such a read may still show them (it may have been answered before the clear)."""
        self._reads: dict[int, int] = {}
        """Reads of outboxes in flight, by the number of clears completed when each began."""
        self._records: dict[str, int] = {}
        """Published records -> how many of their events are not cleared yet."""
        self._recording: dict[str, asyncio.Task[None]] = {}
        """Published records still being written."""
        self._work = asyncio.Event()
        """Set when there may be something to publish (the relay task waits on it)."""
        self._marks = asyncio.Event()
        """Set when there are markers to leave (the marker task waits on it)."""
        self._clear_now = asyncio.Event()
        """Set by ``settle``: the clearer stops waiting for publishing to be quiet."""
        self._round_done = asyncio.Condition()
        self._failures = 0
        self._last_publish = 0.0
        self._last_scan: dict[str, float] = {}
        self._markers_taken: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- what writers call ----------------------------------------------------------------

    def watch(self, collection: str) -> None:
        if collection not in self._leases:
            self._leases[collection] = _Lease()
            self._metrics.outbox_backlog.labels(collection).set_function(lambda: self._unpublished(collection))
            # at 0 from the start: increase() then sees a collection's first miss
            self._metrics.outbox_clear_misses.labels(collection)

    def submit(self, collection: str, docs: Iterable[Document]) -> None:
        """Hand freshly written documents (``_id`` and the new ``outbox`` entries) to the
        relay for publication."""
        self.watch(collection)
        for doc in docs:
            entries = doc.get(OUTBOX)
            if not entries:
                continue
            if self.holds(collection):
                self._note(collection, doc["_id"], entries)
            else:
                self._to_mark.setdefault(collection, set()).add(doc["_id"])
        self._work.set()
        self._marks.set()

    def holds(self, collection: str) -> bool:
        return asyncio.get_running_loop().time() < self._leases[collection].held_until

    def _note(self, collection: str, doc_id: Any, entries: list[Document] | None) -> None:
        key = (collection, doc_id)
        pending = self._pending.get(key)
        if pending is None and entries and entries[0].get("seq") == 1:
            self._pending[key] = _Pending(list(entries))  # a fresh document: nothing came before
        elif pending is None:
            self._pending[key] = _Pending(stale=True)
        else:
            pending.stale = True

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._claim_leases()
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("outbox-leases", self._keep_leases()), ("outbox-relay", self._run()),
            ("outbox-clearer", self._clear_continuously()), ("outbox-markers", self._write_markers()))]

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop; first (within a time limit) publish what was submitted, clear what was
        published, hand word of the rest to the next holder, and give up the leases."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.settle(), timeout_s)
        await cancel_and_wait(self._tasks)
        self._tasks = []
        with contextlib.suppress(Exception):
            for collection, lease in self._leases.items():
                if lease.held_until > float("-inf"):
                    self._hand_over(collection)
            await asyncio.wait_for(self._flush_markers(), 5)
            await asyncio.wait_for(self._release_leases(), 5)

    async def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until everything submitted so far is published (or, where another replica
        publishes, handed over to it). Returns False if publishing failed meanwhile or the
        time ran out: the events stay stored and are published when the bus is back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiting = set(self._pending)
        failures = self._failures
        self._work.set()
        async with self._round_done:
            while True:
                waiting &= self._pending.keys()
                if not waiting and not any(self._to_mark.values()):
                    return True
                if self._failures > failures or loop.time() > deadline:
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await self._round_done.wait()

    async def settle(self) -> None:
        """Publish and clear everything submitted so far, and what the first scan of each
        collection this relay publishes finds (tests, shutdown)."""
        while any(lease.needs_scan for name, lease in self._leases.items() if self._publishable(name)):
            self._work.set()
            await asyncio.sleep(0.01)
        await self.drain()
        await asyncio.gather(*self._recording.values(), return_exceptions=True)
        self._last_publish = float("-inf")
        self._clear_now.set()
        await self._to_clear.join()

    # -- leases ---------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        while True:
            still_running()
            await asyncio.sleep(self._lease_s / 4)
            await self._claim_leases()

    async def _claim_leases(self) -> None:
        for collection in list(self._leases):
            try:
                await self._claim(collection)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the lease runs out by itself
                log.warning("could not renew the outbox lease on %s: %s", collection, error)
            if not self.holds(collection) and self._leases[collection].held_until > float("-inf"):
                self._hand_over(collection)
            self._metrics.outbox_lease.labels(collection).set(1 if self.holds(collection) else 0)

    async def _claim(self, collection: str) -> None:
        started = asyncio.get_running_loop().time()
        claim = await outbox_lease.claim(self._store, collection, self.replica, self._lease_s)
        if not claim:
            return
        lease = self._leases[collection]
        if not self.holds(collection):
            if claim is outbox_lease.Claim.KEPT and lease.held_until > float("-inf"):
                # renewed late (a busy loop), but nobody published meanwhile: what this relay
                # has pending is all there is, no scan
                log.info("outbox relay %s renewed its lapsed lease on %s", self.replica, collection)
            else:
                lease.needs_scan = True
                log.info("outbox relay %s now publishes %s", self.replica, collection)
            self._work.set()
        lease.held_until = started + self._lease_s

    def _hand_over(self, collection: str) -> None:
        """This relay no longer publishes ``collection``: leave word of what it had pending."""
        self._leases[collection].held_until = float("-inf")
        mine = [key for key in self._pending if key[0] == collection]
        for key in mine:
            del self._pending[key]
            self._to_mark.setdefault(collection, set()).add(key[1])
        if mine:
            log.info("outbox relay %s handed %d pending document(s) of %s over", self.replica, len(mine),
                     collection)
        self._marks.set()

    async def _release_leases(self) -> None:
        for collection in self._leases:
            self._metrics.outbox_lease.labels(collection).set(0)
            await outbox_lease.release(self._store, collection, self.replica)

    def _publishable(self, collection: str) -> bool:
        """Hold the lease with at least half its term left (room for a round to finish)."""
        return asyncio.get_running_loop().time() < self._leases[collection].held_until - self._lease_s / 2

    # -- markers (replicas that do not publish) -------------------------------------------

    async def _write_markers(self) -> None:
        while True:
            still_running()
            await self._wait(self._marks, self._poll_interval_s)
            try:
                await self._flush_markers()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - kept, retried; the events are stored anyway
                log.warning("could not leave outbox markers: %s; retrying", error)
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _flush_markers(self) -> None:
        for collection, ids in list(self._to_mark.items()):
            if ids:
                batch = list(ids)
                await self._store.collection(markers(collection)).insert_many([{"_id": i} for i in batch])
                ids.difference_update(batch)
        async with self._round_done:
            self._round_done.notify_all()

    async def _take_markers(self, collection: str) -> None:
        found = await self._store.collection(markers(collection)).find({}, limit=self._batch_size)
        if not found:
            return
        ids = [doc["_id"] for doc in found]
        # Removed before the documents are read: a write after the read leaves a new marker.
        await self._store.collection(markers(collection)).delete_many({"_id": {"$in": ids}})
        for doc_id in ids:
            self._note(collection, doc_id, None)

    # -- publishing -----------------------------------------------------------------------

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                await event.wait()
        event.clear()

    async def _run(self) -> None:
        backoff = 0.0
        loop = asyncio.get_running_loop()
        while True:
            still_running()
            if backoff:
                await asyncio.sleep(backoff)
            try:
                await self._look_for_work(loop.time())
                published = await self._publish_round()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - stored, so not lost: retried after a pause
                self._failures += 1
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_INITIAL_S, backoff * 2))
                self._metrics.outbox_publish_failures.inc()
                log.warning("outbox relay: %s: %s; retrying in %.2f s", type(error).__name__, error, backoff)
                async with self._round_done:
                    self._round_done.notify_all()
                continue
            backoff = 0.0
            async with self._round_done:
                self._round_done.notify_all()
            if not published:
                await self._wait(self._work, self._poll_interval_s)

    async def _look_for_work(self, now: float) -> None:
        """Scans and markers, where due. A failure here only delays finding work: what is
        pending already is published meanwhile (every document but a fresh one is read back
        before publishing, so order never depends on a scan)."""
        for collection, lease in self._leases.items():
            if not self._publishable(collection):
                continue
            try:
                if lease.needs_scan or now - self._last_scan.get(collection, 0) > self._scan_interval_s:
                    await self.scan_collection(collection)
                    lease.needs_scan = False
                if now - self._markers_taken.get(collection, float("-inf")) >= self._poll_interval_s:
                    self._markers_taken[collection] = now
                    await self._take_markers(collection)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - tried again on the next pass
                self._last_scan[collection] = now - self._scan_interval_s + BACKOFF_MAX_S  # rescan soon
                log.warning("outbox relay could not look for pending events of %s: %s: %s", collection,
                            type(error).__name__, error)

    async def _publish_round(self) -> int:
        """Publish the next entry of up to ``batch_size`` documents; returns how many."""
        publishing = {c for c in self._leases if self._publishable(c)}
        keys = list(itertools.islice((k for k in self._pending if k[0] in publishing), self._batch_size))
        if not keys:
            return 0
        await self._read_stale([k for k in keys if not self._pending[k].entries])
        heads = [(k, self._pending[k].entries[0]) for k in keys if k in self._pending and self._pending[k].entries]
        if heads:
            await self._bus.publish(messages_for([entry for _, entry in heads], self._telemetry))
            self._last_publish = asyncio.get_running_loop().time()
            await self._published_round(heads)
        for key in keys:
            pending = self._pending.get(key)
            if pending is not None and not pending.entries and not pending.stale:
                del self._pending[key]
        return len(heads)

    async def _read_stale(self, keys: list[Key]) -> None:
        """Read documents back by ``_id`` (one ``$in`` per collection: an index lookup)."""
        by_collection: dict[str, list[Any]] = {}
        for collection, doc_id in keys:
            by_collection.setdefault(collection, []).append(doc_id)
        for collection, ids in by_collection.items():
            for doc_id in ids:
                # Before the read, not after: a write handed over while the read is under way
                # may be missing from what it returns, and must leave its document stale.
                if (pending := self._pending.get((collection, doc_id))) is not None:
                    pending.stale = False
            async with self._reading() as published:
                docs = await self._store.collection(collection).find({"_id": {"$in": ids}}, projection=[OUTBOX])
                found = {doc["_id"]: doc for doc in docs}
                for doc_id in ids:
                    pending = self._pending.get((collection, doc_id))
                    if pending is None:
                        continue
                    stored = found.get(doc_id, {}).get(OUTBOX, [])
                    pending.entries = [e for e in stored if not published(e["id"])]

    async def _published_round(self, heads: list[tuple[Key, Document]]) -> None:
        by_collection: dict[str, list[tuple[Key, Document]]] = {}
        for key, entry in heads:
            by_collection.setdefault(key[0], []).append((key, entry))
            self._metrics.events_published.labels(entry["topic"], entry["type"]).inc()
            pending = self._pending.get(key)  # gone if the lease lapsed during the round (handed over)
            if pending is not None and pending.entries and pending.entries[0]["id"] == entry["id"]:
                pending.entries.pop(0)
        for collection, done in by_collection.items():
            record = uuid.uuid4().hex
            self._records[record] = len(done)
            for key, entry in done:
                self._published[entry["id"]] = record
                self._to_clear.put_nowait((key, [entry]))
            # Written in the background, so the next round does not wait for the store (busy with
            # an import, say): a crash before it lands costs only duplicates of this round.
            task = asyncio.create_task(self._record(record, collection, [e["id"] for _, e in done]))
            self._recording[record] = task
            task.add_done_callback(functools.partial(self._recorded, record))

    def _recorded(self, record: str, _: asyncio.Task[None]) -> None:
        self._recording.pop(record, None)

    async def _record(self, record: str, collection: str, event_ids: list[str]) -> None:
        try:
            await self._store.collection(PUBLISHED).insert_one(
                {"_id": record, "collection": collection, "events": event_ids})
        except Exception as error:  # noqa: BLE001 - only costs duplicates after a crash
            log.warning("could not record %d published events: %s", len(event_ids), error)

    async def scan(self) -> int:
        """Publish pending events found in every collection this relay publishes; returns
        how many documents had some."""
        found = 0
        for collection in self._leases:
            if self.holds(collection):
                found += await self.scan_collection(collection)
        return found

    async def scan_collection(self, collection: str) -> int:
        """Find every document with pending events (a full scan on FerretDB). Entries that a
        predecessor published (its published records say so) are cleared, not republished."""
        self._last_scan[collection] = asyncio.get_running_loop().time()
        records = await self._store.collection(PUBLISHED).find({"collection": collection})
        earlier = {event_id: record["_id"] for record in records if record["_id"] not in self._records
                   for event_id in record["events"]}
        async with self._reading() as published:
            docs = await self._store.collection(collection).find(HAS_PENDING, projection=[OUTBOX])
            left = dict.fromkeys(set(earlier.values()), 0)
            for doc in docs:
                key = (collection, doc["_id"])
                entries = doc.get(OUTBOX, [])
                done = [e for e in entries if e["id"] in earlier and not published(e["id"])]
                for entry in done:
                    self._published[entry["id"]] = earlier[entry["id"]]
                    left[earlier[entry["id"]]] += 1
                if done:
                    self._to_clear.put_nowait((key, done))
                fresh = [e for e in entries if not published(e["id"])]
                if key in self._pending:
                    self._pending[key].entries = fresh
                elif fresh:
                    self._pending[key] = _Pending(fresh)
        self._records.update(left)
        await self._forget_cleared_records()
        if docs:
            log.info("outbox scan of %s found %d document(s) with pending events", collection, len(docs))
        return len(docs)

    # -- clearing -------------------------------------------------------------------------

    async def _clear_continuously(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            still_running()
            batch = [await self._to_clear.get()]
            while loop.time() - self._last_publish < CLEAR_AFTER_QUIET_S:  # publishing comes first
                await self._wait(self._clear_now, CLEAR_AFTER_QUIET_S / 4)
            while not self._to_clear.empty() and len(batch) < CLEAR_BATCH:
                batch.append(self._to_clear.get_nowait())
            try:
                await self._clear(batch)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - published already; a restart republishes at worst
                log.warning("clearing %d published outbox entries failed: %s; retrying", len(batch), error)
                for item in batch:
                    self._to_clear.put_nowait(item)
                await asyncio.sleep(1)
            finally:
                for _ in batch:
                    self._to_clear.task_done()

    async def _clear(self, batch: Sequence[tuple[Key, list[Document]]]) -> None:
        by_doc: dict[Key, list[Document]] = {}
        for key, entries in batch:
            by_doc.setdefault(key, []).extend(entries)
        by_collection: dict[str, list[tuple[Any, list[Document]]]] = {}
        for (collection, doc_id), entries in by_doc.items():
            by_collection.setdefault(collection, []).append((doc_id, entries))
        for collection, every in by_collection.items():
            for start in range(0, len(every), CLEAR_STATEMENT):
                await self._clear_part(collection, every[start:start + CLEAR_STATEMENT])
        await self._forget_cleared_records()

    async def _clear_part(self, collection: str, cleared: list[tuple[Any, list[Document]]]) -> None:
        """One statement for many documents: each pulls the entries it holds of those listed
        (event ids are unique, so no document can hold another's)."""
        result = await self._store.collection(collection).update_many(
            {"_id": {"$in": [doc_id for doc_id, _ in cleared]}},
            {"$pullAll": {OUTBOX: [e for _, entries in cleared for e in entries]}})
        if result.modified < len(cleared):
            await self._check_missed(collection, cleared)
        self._clears += 1
        for _, entries in cleared:
            for entry in entries:
                if self._reads:
                    self._cleared[entry["id"]] = self._clears
                record = self._published.pop(entry["id"], None)
                if record:
                    self._records[record] = self._records.get(record, 1) - 1

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Callable[[str], bool]]:
        """Around a read of outboxes: yields whether an event id the read shows was published
        already, counting those whose clear completed while the read was in flight (the read
        may have been answered before the clear landed: without this, they looked unpublished
        and went out again)."""
        began = self._clears
        self._reads[began] = self._reads.get(began, 0) + 1
        try:
            yield lambda event_id: event_id in self._published or self._cleared.get(event_id, -1) > began
        finally:
            self._reads[began] -= 1
            if not self._reads[began]:
                del self._reads[began]
            oldest = min(self._reads, default=None)
            if oldest is None:
                self._cleared.clear()
            elif self._cleared:
                self._cleared = {i: n for i, n in self._cleared.items() if n > oldest}

    async def _check_missed(self, collection: str, cleared: list[tuple[Any, list[Document]]]) -> None:
        """Some clears modified nothing: fine if the entries are gone (cleared before), a fault
        if they are still stored (the stored entries differ from what was pulled)."""
        for doc_id, entries in cleared:
            doc = await self._store.collection(collection).find_one({"_id": doc_id}, projection=[OUTBOX])
            stored = {e["id"] for e in (doc or {}).get(OUTBOX, [])}
            stuck = [e["id"] for e in entries if e["id"] in stored]
            if stuck:
                self._metrics.outbox_clear_misses.labels(collection).inc(len(stuck))
                log.error("clearing %s/%s matched nothing though events %s are still stored; they will be "
                          "published again after a restart", collection, doc_id, stuck)

    async def _forget_cleared_records(self) -> None:
        done = [record for record, left in self._records.items() if left <= 0 and record not in self._recording]
        if done:
            await self._store.collection(PUBLISHED).delete_many({"_id": {"$in": done}})
            for record in done:  # a scan and the clearer may both get here across the await
                self._records.pop(record, None)

    # -- reporting ------------------------------------------------------------------------

    def _unpublished(self, collection: str) -> int:
        """Events of ``collection`` known to this replica and not yet published (read when
        Prometheus scrapes, so the hot path does not count)."""
        count = len(self._to_mark.get(collection, ()))
        for (name, _), pending in list(self._pending.items()):
            if name == collection:
                count += max(len(pending.entries), int(pending.stale))
        return count
