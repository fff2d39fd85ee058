"""Idempotent consumption on every store adapter: the ledger's retention, effects applied once
(``apply_once``), and the idempotent handler's outcome - the same on the embedded store as on
MongoDB/FerretDB."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from contracts.envelope import Envelope
from services.runtime.aio import every
from services.runtime.bus import Message
from services.runtime.clock import FixedClock
from services.runtime.idempotency import LEDGER, ProcessedEvents, apply_once, idempotent, purge_expired
from services.runtime.metrics import Metrics
from services.runtime.store import Store

pytestmark = pytest.mark.asyncio
T0 = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)
GROUP = "reporting"




def envelope(event_id: str, type: str = "procurement.delivery.received.v1") -> Envelope:
    return Envelope(id=event_id, type=type, source="/t", subject="S", time=T0, data={})


def outcome_of(handler: object) -> Callable[[Message], Awaitable[str | None]]:
    """The idempotent handler, typed with the outcome it returns."""
    return cast(Callable[[Message], Awaitable[str | None]], handler)


def message(env: Envelope) -> Message:
    return Message(topic="procurement.deliveries", key="S", value=env.model_dump_json().encode())


async def ledger_at(store: Store, clock: FixedClock, *ages_days: int) -> ProcessedEvents:
    """A ledger with one event processed at each of T0 + age days (ids e0, e1, ...)."""
    ledger = ProcessedEvents(store, clock)
    for index, days in enumerate(ages_days):
        clock.advance(T0 + timedelta(days=days) - clock.now())
        await ledger.record(GROUP, envelope(f"e{index}"))
    return ledger


# -- 2a: retention ------------------------------------------------------------------------

async def test_processed_at_is_stored_as_a_date(store: Store) -> None:
    await ledger_at(store, FixedClock(T0), 0)
    stored = await store.collection(LEDGER).find_one({"_id": f"{GROUP}:e0"})
    assert stored is not None and stored["processed_at"] == T0


async def test_purge_deletes_entries_processed_before_the_cutoff_only(store: Store) -> None:
    ledger = await ledger_at(store, FixedClock(T0), 0, 10, 20, 40)
    assert await ledger.purge(T0 + timedelta(days=20)) == 2
    assert [await ledger.seen(GROUP, f"e{i}") for i in range(4)] == [False, False, True, True]
    assert await ledger.purge(T0 + timedelta(days=20)) == 0
    assert await store.collection(LEDGER).count({}) == 2


async def test_purge_also_deletes_old_entries_written_with_iso_text_timestamps(store: Store) -> None:
    ledger = ProcessedEvents(store, FixedClock(T0))
    await store.collection(LEDGER).insert_many([
        {"_id": f"{GROUP}:old", "group": GROUP, "event_id": "old", "type": "x.y.v1",
         "processed_at": (T0 - timedelta(days=1)).isoformat()},
        {"_id": f"{GROUP}:new", "group": GROUP, "event_id": "new", "type": "x.y.v1",
         "processed_at": (T0 + timedelta(days=1)).isoformat()},
    ])
    assert await ledger.purge(T0) == 1
    assert (await ledger.seen(GROUP, "old"), await ledger.seen(GROUP, "new")) == (False, True)


async def test_ledger_retention_purges_now_and_then_until_cancelled(store: Store) -> None:
    clock = FixedClock(T0)
    ledger = await ledger_at(store, clock, 0, 29)
    clock.advance(timedelta(days=1))  # now T0 + 30 days: e0 is 30 days old, e1 one day
    task = asyncio.create_task(every(0.01, lambda: purge_expired(ledger, clock, timedelta(days=7)), "retention"))
    try:
        for _ in range(500):
            if not await ledger.seen(GROUP, "e0"):
                break
            await asyncio.sleep(0.01)
        assert not await ledger.seen(GROUP, "e0")
        assert await ledger.seen(GROUP, "e1")
        clock.advance(timedelta(days=7))
        for _ in range(500):
            if not await ledger.seen(GROUP, "e1"):
                break
            await asyncio.sleep(0.01)
        assert not await ledger.seen(GROUP, "e1")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- 2b: apply_once -----------------------------------------------------------------------

async def test_apply_once_applies_an_event_once_and_creates_the_document(store: Store) -> None:
    counters = store.collection("counters")
    assert await apply_once(counters, "camden", "e1", {"$inc": {"delivered": 3}}) is True
    assert await apply_once(counters, "camden", "e1", {"$inc": {"delivered": 3}}) is False
    assert await apply_once(counters, "camden", "e2", {"$inc": {"delivered": 2}}) is True
    assert await apply_once(counters, "camden", "e2", {"$inc": {"delivered": 2}}) is False
    doc = await counters.find_one({"_id": "camden"})
    assert doc is not None
    assert (doc["delivered"], doc["applied_events"]) == (5, ["e1", "e2"])
    assert await counters.count({}) == 1


async def test_apply_once_merges_the_callers_push_with_its_own(store: Store) -> None:
    projection = store.collection("projection")
    update = {"$set": {"site": "Camden"}, "$push": {"history": {"$each": ["delivered"]}}}
    assert await apply_once(projection, "MPS-D-1", "e1", update) is True
    assert await apply_once(projection, "MPS-D-1", "e1", update) is False
    assert await apply_once(projection, "MPS-D-1", "e2", {"$push": {"history": "moved"}}) is True
    doc = await projection.find_one({"_id": "MPS-D-1"})
    assert doc is not None
    assert (doc["site"], doc["history"], doc["applied_events"]) == ("Camden", ["delivered", "moved"], ["e1", "e2"])


async def test_apply_once_keeps_only_the_last_event_ids(store: Store) -> None:
    counters = store.collection("counters")
    for event_id in ("e1", "e2", "e3"):
        assert await apply_once(counters, "camden", event_id, {"$inc": {"n": 1}}, keep=2) is True
    assert await apply_once(counters, "camden", "e3", {"$inc": {"n": 1}}, keep=2) is False
    doc = await counters.find_one({"_id": "camden"})
    assert doc is not None
    assert (doc["n"], doc["applied_events"]) == (3, ["e2", "e3"])


async def test_apply_once_concurrent_deliveries_of_one_event_apply_it_once(store: Store) -> None:
    # Failed now and then on stock FerretDB 1.24 (SQLite): two concurrent findAndModify calls on
    # one document both passed the filter and both wrote. The build in deploy/local locks the
    # collection from each statement's read to its write-back (deploy/local/ferretdb.sh 5-7).
    counters = store.collection("counters")
    await apply_once(counters, "camden", "e0", {"$inc": {"n": 1}})
    results = await asyncio.gather(*(apply_once(counters, "camden", "e1", {"$inc": {"n": 1}}) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    doc = await counters.find_one({"_id": "camden"})
    assert doc is not None and doc["n"] == 2


async def test_apply_once_refuses_updates_touching_its_own_field(store: Store) -> None:
    with pytest.raises(ValueError):
        await apply_once(store.collection("counters"), "x", "e1", {"$set": {"applied_events": []}})
    with pytest.raises(ValueError):
        await apply_once(store.collection("counters"), "x", "e1", {"n": 1})


# -- 2c: the idempotent handler reports a duplicate -----------------------------------------

async def test_idempotent_handler_returns_duplicate_for_a_seen_event_and_counts_nothing(store: Store) -> None:
    metrics = Metrics()
    handled: list[str] = []

    async def on_delivery(env: Envelope) -> None:
        handled.append(env.id)

    handle = outcome_of(idempotent(GROUP, ProcessedEvents(store, FixedClock(T0)), metrics,
                        {"procurement.delivery.received.v1": on_delivery}))
    first = message(envelope("e1"))
    assert await handle(first) is None
    assert await handle(first) == "duplicate"
    assert await handle(message(envelope("e2"))) is None
    assert await handle(message(envelope("e3", type="procurement.order.placed.v1"))) is None  # not ours
    assert handled == ["e1", "e2"]
    assert not metrics.registry.get_sample_value(
        "events_consumed_total", {"topic": "procurement.deliveries", "group": GROUP, "outcome": "duplicate"})
