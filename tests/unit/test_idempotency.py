"""Idempotent consumption on the embedded store: the ledger's retention, ``apply_once`` and
the idempotent handler's outcome. (tests/contract/test_idempotency_contract.py runs the
store-facing behaviour on MongoDB/FerretDB as well.)"""

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
from services.runtime.idempotency import (
    DUPLICATE,
    LEDGER,
    ProcessedEvents,
    apply_once,
    idempotent,
    purge_expired,
)
from services.runtime.metrics import Metrics
from services.runtime.store.memory import MemoryStore

pytestmark = pytest.mark.asyncio
T0 = datetime(2015, 8, 3, 9, 0, tzinfo=UTC)
DELIVERY = "procurement.delivery.received.v1"


def envelope(event_id: str, type: str = DELIVERY) -> Envelope:
    return Envelope(id=event_id, type=type, source="/t", subject="S", time=T0, data={})


def outcome_of(handler: object) -> Callable[[Message], Awaitable[str | None]]:
    """The idempotent handler, typed with the outcome it returns."""
    return cast(Callable[[Message], Awaitable[str | None]], handler)


def message(env: Envelope) -> Message:
    return Message(topic="procurement.deliveries", key="S", value=env.model_dump_json().encode())


# -- 2a: retention ------------------------------------------------------------------------

async def test_the_ledger_records_processed_at_as_a_date_and_purges_by_it() -> None:
    store, clock = MemoryStore(), FixedClock(T0)
    ledger = ProcessedEvents(store, clock)
    await ledger.record("g", envelope("old"))
    clock.advance(timedelta(days=31))
    await ledger.record("g", envelope("new"))
    assert (await store.collection(LEDGER).find_one({"_id": "g:old"}))["processed_at"] == T0  # type: ignore[index]

    assert await ledger.purge(clock.now() - timedelta(days=30)) == 1
    assert (await ledger.seen("g", "old"), await ledger.seen("g", "new")) == (False, True)


async def test_purge_wants_an_aware_cutoff() -> None:
    with pytest.raises(ValueError):
        await ProcessedEvents(MemoryStore(), FixedClock(T0)).purge(datetime(2015, 8, 3))


class FlakyLedger:
    def __init__(self) -> None:
        self.cutoffs: list[datetime] = []

    async def purge(self, older_than: datetime) -> int:
        self.cutoffs.append(older_than)
        if len(self.cutoffs) == 1:
            raise ConnectionError("store unreachable")
        return 0


async def test_ledger_retention_purges_at_once_then_periodically_and_survives_a_failure() -> None:
    ledger = FlakyLedger()
    purge = lambda: purge_expired(ledger, FixedClock(T0), timedelta(days=30))  # type: ignore[arg-type]  # noqa: E731
    task = asyncio.create_task(every(0.005, purge, "ledger retention"))
    try:
        for _ in range(400):
            if len(ledger.cutoffs) >= 3:
                break
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(ledger.cutoffs) >= 3
    assert set(ledger.cutoffs) == {T0 - timedelta(days=30)}


async def test_ledger_retention_refuses_nonsense_settings() -> None:
    ledger = ProcessedEvents(MemoryStore(), FixedClock(T0))
    with pytest.raises(ValueError):
        await purge_expired(ledger, FixedClock(T0), timedelta(0))
    with pytest.raises(ValueError):
        await every(0, lambda: purge_expired(ledger, FixedClock(T0), timedelta(days=1)), "retention")


# -- 2b: apply_once -----------------------------------------------------------------------

async def test_apply_once_counts_each_event_once() -> None:
    counters = MemoryStore().collection("counters")
    outcomes = [await apply_once(counters, "camden", e, {"$inc": {"n": 1}}) for e in ("e1", "e1", "e2", "e1")]
    assert outcomes == [True, False, True, False]
    assert await counters.find_one({"_id": "camden"}) == {"_id": "camden", "n": 2, "applied_events": ["e1", "e2"]}


async def test_apply_once_merges_pushes_and_keeps_the_last_ids() -> None:
    docs = MemoryStore().collection("projection")
    for event_id in ("e1", "e2", "e3"):
        assert await apply_once(docs, "d", event_id, {"$push": {"log": event_id}}, keep=2)
    assert await docs.find_one({"_id": "d"}) == {"_id": "d", "log": ["e1", "e2", "e3"], "applied_events": ["e2", "e3"]}


async def test_apply_once_concurrent_deliveries_apply_once() -> None:
    counters = MemoryStore().collection("counters")
    results = await asyncio.gather(*(apply_once(counters, "c", "e1", {"$inc": {"n": 1}}) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    assert (await counters.find_one({"_id": "c"}))["n"] == 1  # type: ignore[index]


# -- 2c: the idempotent handler -------------------------------------------------------------

async def test_idempotent_returns_duplicate_for_a_seen_event_and_leaves_counting_to_delivery() -> None:
    metrics, handled = Metrics(), []

    async def on_delivery(env: Envelope) -> None:
        handled.append(env.id)

    ledger = ProcessedEvents(MemoryStore(), FixedClock(T0))
    handle = outcome_of(idempotent("g", ledger, metrics, {DELIVERY: on_delivery}))
    assert await handle(message(envelope("e1"))) is None
    assert await handle(message(envelope("e1"))) == DUPLICATE == "duplicate"
    assert await handle(message(envelope("e2", type="procurement.order.placed.v1"))) is None
    assert handled == ["e1"]
    assert not metrics.registry.get_sample_value(
        "events_consumed_total", {"topic": "procurement.deliveries", "group": "g", "outcome": "duplicate"})


async def test_idempotent_does_not_record_an_event_whose_handler_failed() -> None:
    calls = 0

    async def flaky(env: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store unreachable")

    handle = outcome_of(idempotent("g", ProcessedEvents(MemoryStore(), FixedClock(T0)), Metrics(), {DELIVERY: flaky}))
    with pytest.raises(ConnectionError):
        await handle(message(envelope("e1")))
    assert await handle(message(envelope("e1"))) is None  # the retry runs the handler
    assert await handle(message(envelope("e1"))) == DUPLICATE
    assert calls == 2
