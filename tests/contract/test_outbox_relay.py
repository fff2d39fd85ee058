"""The outbox relay, on the embedded store and on the real MongoDB-wire server: nothing lost,
nothing published falsely, one document's events in stored order, even across bus outages,
concurrent writes and two replicas."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.envelope import Envelope
from contracts.inventory import DeviceRegisteredV1
from services.inventory import domain
from services.inventory.domain import DeviceSpec
from services.runtime.bus import OutgoingMessage
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.memory import MemoryBus
from services.runtime.metrics import Metrics
from services.runtime.outbox import OutboxRelay, new_with_outbox, outbox_entries, set_with_outbox
from services.runtime.store import Store
from services.runtime.telemetry import Telemetry
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, tzinfo=UTC)
TOPIC = "inventory.devices"




def event(tag: str, n: int) -> Envelope:
    device = domain.register(DeviceSpec.model_validate(device_body(f"MPS-{tag}")), NOW).value
    return Envelope(id=f"ev-{tag}-{n}", type="inventory.device.registered.v1", source="/t",
                    subject=tag, time=NOW, data=DeviceRegisteredV1(device=device).model_dump(mode="json"))


class FlakyBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__(partitions=1, policy=RetryPolicy(), telemetry=Telemetry("t"), metrics=Metrics())
        self.down = False
        self.fail_after: int | None = None
        """Publish this many more messages, then fail (a round that dies half way)."""

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        if self.fail_after is not None:
            allowed, self.fail_after = messages[:self.fail_after], None
            await super().publish(allowed)
            if len(allowed) < len(messages):
                self.down = True
                raise ConnectionError("broker went away mid-batch")
            return
        await super().publish(messages)


RELAYS: list[OutboxRelay] = []


@pytest.fixture(autouse=True)
async def no_relay_outlives_its_test() -> AsyncIterator[None]:
    yield
    while RELAYS:
        await crash(RELAYS.pop())


def relay(bus: MemoryBus, store: Store, metrics: Metrics | None = None, **options: float) -> OutboxRelay:
    values = {"scan_interval_s": 60.0, "lease_s": 2.0, "poll_interval_s": 0.05} | options
    made = OutboxRelay(bus=bus, store=store, collections=["devices"], metrics=metrics or Metrics(),
                       telemetry=Telemetry("t"), **values)  # type: ignore[arg-type]
    RELAYS.append(made)
    return made


def published_ids(bus: MemoryBus) -> list[str]:
    return [json.loads(m.value)["id"] for m in bus.messages(TOPIC)]


async def crash(r: OutboxRelay) -> None:
    """The process dies: tasks stop where they are, nothing is flushed, cleared or released."""
    for task in r._tasks:
        task.cancel()
    await asyncio.gather(*r._tasks, return_exceptions=True)


async def eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def insert(store: Store, r: OutboxRelay, tag: str) -> None:
    doc = new_with_outbox({"_id": tag, "version": 1}, outbox_entries([event(tag, 1)], TOPIC))
    await store.collection("devices").insert_one(doc)
    r.submit("devices", [doc])


async def change(store: Store, r: OutboxRelay, tag: str, n: int) -> None:
    entries = outbox_entries([event(tag, n)], TOPIC)
    await store.collection("devices").update_one({"_id": tag}, set_with_outbox({"version": n}, entries))
    r.submit("devices", [{"_id": tag, "outbox": entries}])


async def outbox_of(store: Store, tag: str) -> list[dict[str, object]]:
    doc = await store.collection("devices").find_one({"_id": tag})
    assert doc is not None
    return list(doc["outbox"])


async def test_events_left_by_a_crash_are_published_once_by_the_next_relay(store: Store) -> None:
    bus = FlakyBus()
    await store.collection("devices").insert_one(
        new_with_outbox({"_id": "A"}, outbox_entries([event("A", 1)], TOPIC)))
    first = relay(bus, store)
    await first.start()
    await first.stop()
    second = relay(bus, store)
    await second.start()
    await second.stop()
    assert published_ids(bus) == ["ev-A-1"]
    assert await outbox_of(store, "A") == []  # cleared with the entries as read back from the store


async def test_clearing_removes_only_what_was_published(store: Store) -> None:
    bus = FlakyBus()
    r = relay(bus, store)
    await r.start()
    await insert(store, r, "B")
    assert await r.drain()
    later = outbox_entries([event("B", 2)], TOPIC)
    await store.collection("devices").update_one({"_id": "B"}, {"$push": {"outbox": {"$each": later}}})
    await r.settle()
    assert [e["id"] for e in await outbox_of(store, "B")] == ["ev-B-2"]
    await r.scan()
    await r.settle()
    await r.stop()
    assert published_ids(bus) == ["ev-B-1", "ev-B-2"]
    assert await outbox_of(store, "B") == []


async def test_writes_during_an_outage_leave_in_stored_order(store: Store) -> None:
    bus = FlakyBus()
    r = relay(bus, store)
    await r.start()
    bus.down = True
    await insert(store, r, "C")
    assert not await r.drain(timeout_s=5)  # publishing failed: stored, not lost, not raised
    await change(store, r, "C", 2)
    await change(store, r, "C", 3)
    await insert(store, r, "D")
    await asyncio.sleep(0.3)  # retries while the broker is still down fail too
    assert published_ids(bus) == []
    bus.down = False
    await eventually(lambda: len(published_ids(bus)) == 4)
    await r.settle()
    await r.stop()
    assert [i for i in published_ids(bus) if i.startswith("ev-C")] == ["ev-C-1", "ev-C-2", "ev-C-3"]
    assert await outbox_of(store, "C") == [] and await outbox_of(store, "D") == []


async def test_a_round_that_fails_half_way_never_lets_a_later_event_overtake(store: Store) -> None:
    bus = FlakyBus()
    r = relay(bus, store)
    await r.start()
    bus.down = True
    for tag in ("E", "F", "G"):
        await insert(store, r, tag)
    for tag in ("E", "F", "G"):
        await change(store, r, tag, 2)
    bus.down, bus.fail_after = False, 1  # the next round publishes one message, then the broker goes
    await eventually(lambda: bus.fail_after is None)
    bus.down = False
    await eventually(lambda: set(published_ids(bus)) >= {f"ev-{t}-{n}" for t in "EFG" for n in (1, 2)})
    await r.stop()
    ids = published_ids(bus)
    for tag in "EFG":
        firsts = list(dict.fromkeys(i for i in ids if i.startswith(f"ev-{tag}")))
        assert firsts == [f"ev-{tag}-1", f"ev-{tag}-2"]


async def test_two_replicas_publish_through_one_holder_in_stored_order(store: Store) -> None:
    bus = FlakyBus()
    a, b = relay(bus, store), relay(bus, store)
    await a.start()
    await b.start()
    assert a.holds("devices") and not b.holds("devices")
    await insert(store, b, "H")  # written by the replica that does not publish
    await change(store, a, "H", 2)
    await change(store, b, "H", 3)
    await change(store, a, "H", 4)
    await eventually(lambda: len(published_ids(bus)) >= 4)
    await a.settle()
    assert published_ids(bus) == ["ev-H-1", "ev-H-2", "ev-H-3", "ev-H-4"]
    await a.stop()  # gives the lease up: b takes over and publishes what is written next
    await eventually(lambda: b.holds("devices"))
    await change(store, b, "H", 5)
    await eventually(lambda: len(published_ids(bus)) >= 5)
    await b.stop()
    assert published_ids(bus) == ["ev-H-1", "ev-H-2", "ev-H-3", "ev-H-4", "ev-H-5"]
    assert await outbox_of(store, "H") == []


async def test_a_crash_after_publishing_republishes_nothing_recorded(store: Store) -> None:
    bus = FlakyBus()
    first = relay(bus, store)
    await first.start()
    for tag in ("J", "K", "L"):
        await insert(store, first, tag)
    assert await first.drain()
    await crash(first)  # published and recorded, never cleared
    assert len(await outbox_of(store, "J")) == 1
    second = relay(bus, store, lease_s=0.5)
    await second.start()
    await eventually(lambda: second.holds("devices"), timeout=5)  # once the dead replica's lease runs out
    await eventually(lambda: second._to_clear.empty() and not second._published, timeout=10)
    await second.stop()
    assert sorted(published_ids(bus)) == ["ev-J-1", "ev-K-1", "ev-L-1"]
    assert await outbox_of(store, "J") == []


async def test_a_clear_that_matches_nothing_is_counted(store: Store) -> None:
    bus, metrics = FlakyBus(), Metrics()
    r = relay(bus, store, metrics)
    await r.start()
    await eventually(lambda: not r._leases["devices"].needs_scan)  # its first scan is behind it
    doc = new_with_outbox({"_id": "M"}, outbox_entries([event("M", 1)], TOPIC))
    stored = {**doc, "outbox": [dict(reversed(list(e.items()))) for e in doc["outbox"]]}
    await store.collection("devices").insert_one(stored)
    r.submit("devices", [doc])  # the relay pulls the entry in another field order: matches nothing
    await r.settle()
    await r.stop()
    assert published_ids(bus) == ["ev-M-1"]
    assert metrics.registry.get_sample_value("outbox_clear_misses_total", {"collection": "devices"}) == 1


async def test_a_lease_renewed_late_by_a_busy_loop_costs_no_scan(store: Store) -> None:
    """A loop blocked past the lease's end (a long synchronous batch) renews it late; nobody
    held it meanwhile, so the relay goes on with what it has pending: no full scan, which on
    a large collection would block the loop again."""
    bus = FlakyBus()
    r = relay(bus, store, lease_s=0.4)
    await r.start()
    await eventually(lambda: r.holds("devices") and not r._leases["devices"].needs_scan)
    scans: list[str] = []
    scan = r.scan_collection

    async def counted(collection: str) -> int:
        scans.append(collection)
        return await scan(collection)

    r.scan_collection = counted  # type: ignore[method-assign]
    time.sleep(0.6)  # noqa: ASYNC251 - the point: the loop is blocked past the lease's end
    assert not r.holds("devices")
    await insert(store, r, "P")  # written while the lease had lapsed: left as a marker
    await eventually(lambda: r.holds("devices"), timeout=5)
    await eventually(lambda: published_ids(bus) == ["ev-P-1"], timeout=5)
    await r.stop()
    assert scans == []


async def test_a_lease_another_replica_held_meanwhile_is_taken_with_a_scan(store: Store) -> None:
    bus = FlakyBus()
    a, b = relay(bus, store, lease_s=0.4), relay(bus, store, lease_s=0.4)
    await a.start()
    await eventually(lambda: a.holds("devices"))
    await b.start()
    await a.stop()  # gives the lease up: b takes it (and scans), then gives it up too
    await eventually(lambda: b.holds("devices"), timeout=5)
    await eventually(lambda: not b._leases["devices"].needs_scan, timeout=5)
    await b.stop()
    c = relay(bus, store, lease_s=0.4)
    await c.start()
    await eventually(lambda: c.holds("devices"), timeout=5)
    await eventually(lambda: not c._leases["devices"].needs_scan, timeout=5)  # it scanned
    await c.stop()


class DevicesWrapped:
    """A store whose ``devices`` collection is seen through ``wrap``; the rest as they are."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def wrap(self, devices: object) -> object:
        raise NotImplementedError

    def collection(self, name: str) -> object:
        inner = self.inner.collection(name)
        return self.wrap(inner) if name == "devices" else inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class Wrapping:
    """A collection that passes everything to ``inner`` but what a subclass overrides."""

    def __init__(self, inner: object, owner: Any) -> None:
        self.inner, self.owner = inner, owner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class ClearRacing(DevicesWrapped):
    """A store whose ``devices`` reads of outboxes (``_id $in``, or the scan for pending events)
    answer what they read but hand it over only once the relay's next clear has completed: a
    read that started before a clear and ends after it, as on a busy server with many
    connections."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.hold: str | None = None
        """Which reads to hold: "by_id" or "scan"."""
        self.held = 0
        self.cleared = asyncio.Event()

    def wrap(self, devices: object) -> object:
        return _RacingCollection(devices, self)


class _RacingCollection(Wrapping):
    async def find(self, filter: dict[str, object], **options: object) -> list[dict[str, object]]:
        docs: list[dict[str, object]] = await self.inner.find(filter, **options)  # type: ignore[attr-defined]
        by_id = isinstance(filter.get("_id"), dict) and "$in" in filter["_id"]  # type: ignore[operator]
        if self.owner.hold == ("by_id" if by_id else "scan") and docs:
            self.owner.hold, self.owner.held = None, self.owner.held + 1
            self.owner.cleared.clear()
            await asyncio.wait_for(self.owner.cleared.wait(), 10)
        return docs

    async def update_many(self, filter: dict[str, object], update: dict[str, object]) -> object:
        result = await self.inner.update_many(filter, update)  # type: ignore[attr-defined]
        if "$pullAll" in update:
            self.owner.cleared.set()
        return result


@pytest.mark.parametrize("read", ["by_id", "scan"])
async def test_a_read_that_spans_a_clear_republishes_nothing(store: Store, read: str) -> None:
    """The relay reads a document's outbox back (or scans) while it clears what it published:
    the read shows the entry the clear is removing, and it must not be published again."""
    bus, racing = FlakyBus(), ClearRacing(store)
    r = relay(bus, racing)  # type: ignore[arg-type]
    await r.start()
    await eventually(lambda: not r._leases["devices"].needs_scan)
    await insert(racing, r, "N")  # type: ignore[arg-type]
    assert await r.drain()  # published; cleared once publishing has been quiet a while
    racing.hold = read
    if read == "by_id":
        await change(racing, r, "N", 2)  # type: ignore[arg-type]  # read back before it is published
    else:
        await r.scan()
    await eventually(lambda: racing.held == 1, timeout=10)
    await r.settle()
    await r.stop()
    expected = ["ev-N-1", "ev-N-2"] if read == "by_id" else ["ev-N-1"]
    assert published_ids(bus) == expected
    assert await outbox_of(store, "N") == []


async def test_a_lease_lost_while_publishing_republishes_nothing(store: Store) -> None:
    """The lease lapses while a round is in flight (a slow store delays its renewal): what the
    round published is remembered, so the scan after the lease is back clears it instead."""
    r: OutboxRelay | None = None

    class LeaseLosingBus(FlakyBus):
        lost = False

        async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
            await super().publish(messages)
            assert r is not None
            if not self.lost:  # the first round outlives the lease
                self.lost = True
                r._hand_over("devices")

    bus = LeaseLosingBus()
    r = relay(bus, store, lease_s=0.4)
    await r.start()
    await eventually(lambda: not r._leases["devices"].needs_scan)
    await insert(store, r, "P")
    await eventually(lambda: bus.lost, timeout=10)
    await eventually(lambda: r.holds("devices") and not r._leases["devices"].needs_scan, timeout=10)
    await r.settle()
    await r.stop()
    assert published_ids(bus) == ["ev-P-1"]
    assert await outbox_of(store, "P") == []


class WriteDuringRead(DevicesWrapped):
    """A store on which the relay's next read-back by ``_id`` of ``devices`` returns what it
    read only after ``write`` ran: a write that landed after the read's snapshot."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.write: Callable[[], Awaitable[None]] | None = None

    def wrap(self, devices: object) -> object:
        return _WriteDuringReadCollection(devices, self)


class _WriteDuringReadCollection(Wrapping):
    async def find(self, filter: dict[str, object], **options: object) -> list[dict[str, object]]:
        docs: list[dict[str, object]] = await self.inner.find(filter, **options)  # type: ignore[attr-defined]
        write, self.owner.write = self.owner.write, None
        if write is not None and isinstance(filter.get("_id"), dict):
            await write()
        return docs


async def test_a_write_landing_during_a_read_back_is_published_without_a_scan(store: Store) -> None:
    """The relay reads a document's outbox back; a write of that document lands (and is handed
    to the relay) after the read's snapshot. The read must not make the relay forget the later
    write: its event goes out in order without waiting for a scan (60 s here). Before the fix it
    waited for the scan: 1-4 of 100 migrated devices' last inventory events, in the benchmark."""
    bus, racing = FlakyBus(), WriteDuringRead(store)
    r = relay(bus, racing)  # type: ignore[arg-type]
    await r.start()
    await eventually(lambda: not r._leases["devices"].needs_scan)
    await insert(store, r, "W")
    assert await r.drain()

    async def third() -> None:
        await change(store, r, "W", 3)
    racing.write = third
    await change(store, r, "W", 2)  # not a fresh document: read back by _id, and v3 lands meanwhile
    await eventually(lambda: len(published_ids(bus)) >= 3, timeout=10)
    assert published_ids(bus) == ["ev-W-1", "ev-W-2", "ev-W-3"]
