"""Projections: the same events give the same figures whatever Kafka redelivers or reorders
across keys; an older device version arriving late changes nothing; live == fold."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.reporting.domain import projector
from services.reporting.projection import Fold, as_of, series
from services.reporting.store import ReadModel, StaleJournal
from services.runtime.store import StoreUnavailable
from services.runtime.store.memory import MemoryStore

T0 = datetime(2014, 4, 8, 9, tzinfo=UTC)


def device(tag: str, version: int, *, os: str = "XP", state: str = "in_service", borough: str | None = "Camden",
           kind: str = "desktop", at: datetime = T0) -> dict[str, Any]:
    return {"device": {"asset_tag": tag, "kind": kind, "os": {"family": "windows", "version": os},
                       "location": {"site": f"{borough or 'NSY'} Police Station", "borough": borough,
                                    "unit": "Territorial Policing"},
                       "state": state, "version": version, "updated_at": at.isoformat()}}


def event(type_: str, data: dict[str, Any], at: datetime = T0) -> tuple[str, str, dict[str, Any], datetime]:
    return str(uuid.uuid4()), type_, data, at


REGISTERED, UPDATED, MOVED = ("inventory.device.registered.v1", "inventory.device.updated.v1",
                              "inventory.device.state_changed.v1")


def history() -> list[tuple[str, str, dict[str, Any], datetime]]:
    """Three XP desktops; A migrates to 8.1 on day 2, B is retired and disposed on day 3."""
    d2, d3 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    return [
        event(REGISTERED, device("MPS-A", 1)), event(REGISTERED, device("MPS-B", 1, borough="Barnet")),
        event(REGISTERED, device("MPS-C", 1, borough=None)),
        event(MOVED, device("MPS-A", 2, state="migrating", at=d2), d2),
        event(UPDATED, device("MPS-A", 3, os="8.1", state="migrating", at=d2), d2),
        event(MOVED, device("MPS-A", 4, os="8.1", state="migrated", at=d2), d2),
        event("inventory.device.retired.v1", device("MPS-B", 2, state="retired", borough="Barnet", at=d3), d3),
        event("inventory.device.disposed.v1", device("MPS-B", 3, state="disposed", borough="Barnet", at=d3), d3),
    ]


def fold(events: list[tuple[str, str, dict[str, Any], datetime]]) -> Fold:
    f = Fold(projector())
    f.apply_all(events)
    return f


def test_the_figures_of_a_small_history() -> None:
    f = fold(history())
    assert f.dimensions["estate"] == {"devices": 2, "legacy": 1, "migrated": 1, "was_legacy": 3, "disposed": 1}
    assert f.dimensions["os:windows:XP"] == {"devices": 1}
    assert f.dimensions["os:windows:8.1"] == {"devices": 1}
    assert f.dimensions["borough:central"] == {"devices": 1, "legacy": 1, "was_legacy": 1}
    assert f.dimensions["borough:Barnet"] == {"was_legacy": 1, "disposed": 1}
    # as of day 1: three legacy devices; the daily series shows the burn-down
    day1 = as_of(f.days.items(), date(2014, 4, 8))
    assert day1["estate"] == {"devices": 3, "legacy": 3, "was_legacy": 3}
    points = series(f.days.items(), ["estate|legacy"])
    assert [(d.day, c["estate|legacy"]) for d, c in points] == [(8, 3), (9, 2), (10, 1)]


def test_redelivery_changes_nothing() -> None:
    events = history()
    once = fold(events)
    twice = fold([e for e in events for _ in range(2)])
    again = fold(events + events)
    assert twice.dimensions == once.dimensions == again.dimensions
    assert twice.days == once.days


def test_any_interleaving_of_keys_gives_the_same_figures() -> None:
    """Kafka keeps one device's events in order, nothing across devices."""
    events = history()
    by_device: dict[str, list[Any]] = {}
    for e in events:
        by_device.setdefault(e[2]["device"]["asset_tag"], []).append(e)
    expected = fold(events)
    rng = random.Random(1)
    for _ in range(30):
        queues = [list(q) for q in by_device.values()]
        mixed = []
        while any(queues):
            q = rng.choice([q for q in queues if q])
            mixed.append(q.pop(0))
        f = fold(mixed)
        assert f.dimensions == expected.dimensions
        assert f.days == expected.days


def test_an_older_version_arriving_late_is_ignored() -> None:
    events = history()
    a_v1, a_v4 = events[0], events[5]
    stale = event(UPDATED, device("MPS-A", 2, os="XP", state="in_service"))
    f = fold([a_v1, a_v4, stale])
    assert f.dimensions["estate"] == {"devices": 1, "migrated": 1, "was_legacy": 1}
    assert "os:windows:XP" not in f.dimensions or f.dimensions["os:windows:XP"] == {}
    assert f.dimensions["os:windows:8.1"] == {"devices": 1}


def test_a_device_moving_os_moves_one_count() -> None:
    f = fold(history()[:5])
    assert f.dimensions["os:windows:XP"] == {"devices": 2}
    assert f.dimensions["os:windows:8.1"] == {"devices": 1}


def test_blockers_are_ranked_by_what_fixing_them_unblocks() -> None:
    def assessed(tag: str, apps: list[str], site: str) -> tuple[str, str, dict[str, Any], datetime]:
        return event("migration.device.assessed.v1", {
            "asset_tag": tag, "kind": "desktop", "site": site, "borough": "Camden",
            "os": {"family": "windows", "version": "XP"}, "target": {"family": "windows", "version": "8.1"},
            "outcome": "blocked", "blocking_applications": [{"name": a, "compatibility": "incompatible"} for a in apps],
            "policy_version": 1, "occurred_at": T0.isoformat()})

    events = [assessed("MPS-1", ["CRIS", "PNC"], "S1"), assessed("MPS-2", ["CRIS", "PNC"], "S1"),
              assessed("MPS-3", ["CRIS", "PNC"], "S2"), assessed("MPS-4", ["PNC"], "S1"),
              assessed("MPS-5", ["NSPIS"], "S1"), assessed("MPS-6", ["NSPIS"], "S2")]
    f = fold(events)
    # CRIS blocks 3 devices but fixing it alone unblocks none; NSPIS unblocks 2 at 2 sites
    assert f.dimensions["blocker:CRIS"] == {"devices": 3}
    assert f.dimensions["blocker:NSPIS"]["unblocks"] == 2
    assert f.dimensions["blocker:PNC"]["unblocks"] == 1
    assert f.dimensions["readiness:blocked"] == {"devices": 6}


def test_purchases_commit_spend_once_per_version() -> None:
    def req(version: int, state: str) -> tuple[str, str, dict[str, Any], datetime]:
        return event(f"procurement.purchase.{'ordered' if state == 'ordered' else 'requested'}.v1", {"request": {
            "request_id": "PR-1", "state": state, "value_pence": 100_000_00, "framework_name": "G-Cloud 7",
            "category": "end_user_devices", "classification": "modern", "version": version,
            "updated_at": T0.isoformat()}})

    f = fold([req(1, "submitted"), req(2, "ordered"), req(1, "submitted"), req(2, "ordered")])
    assert f.dimensions["spend"] == {"committed_pence": 100_000_00, "orders": 1}
    assert f.dimensions["spend:framework:G-Cloud 7"]["committed_pence"] == 100_000_00


@pytest.mark.parametrize("permutation", range(6))
async def test_the_live_read_model_equals_the_fold(permutation: int) -> None:
    """The store applies the same outcomes document by document, with redeliveries."""
    events = history()
    order = list(itertools.permutations([0, 1, 2]))[permutation]
    store = MemoryStore()
    model = ReadModel(store)
    p = projector()
    keys = ["MPS-A", "MPS-B", "MPS-C"]
    for k in order:
        mine = [e for e in events if e[2]["device"]["asset_tag"] == keys[k]]
        partition = f"inventory.devices|{k}"
        for n, e in enumerate(mine):
            await model.apply_batch(p, partition, [(n, e)])
            await model.apply_batch(p, partition, [(n, e)])  # redelivered
        await model.apply_batch(p, partition, list(enumerate(mine)))  # the whole partition again
        fresh = ReadModel(store)  # a consumer that knows nothing: the journal is applied again
        await fresh.apply_batch(p, partition, list(enumerate(mine)))
    expected = fold(events)
    live = await model.snapshot()
    assert live["dimensions"] == {d: c for d, c in expected.dimensions.items() if c}
    assert live["days"] == {d: c for d, c in expected.days.items() if c}
    assert set(live["entities"]) == set(expected.entities)


class CrashingInserts:
    """A collection whose next bulk insert fails, as a store going away mid-batch would."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.crash = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def insert_many(self, docs: Any) -> Any:
        if self.crash:
            self.crash = False
            raise StoreUnavailable("gone mid-batch")
        return await self._inner.insert_many(docs)


async def test_a_crash_between_the_journal_and_the_entities_loses_and_doubles_nothing() -> None:
    """The dimensions took the batch, the entities did not: a consumer that starts again (or
    the same one, retrying) applies the journal again, which adds nothing twice."""
    events = history()
    p = projector()
    store = MemoryStore()
    model = ReadModel(store)
    crashing = CrashingInserts(model.entities)
    model.entities = crashing  # type: ignore[assignment]
    batch = list(enumerate(events))
    with pytest.raises(StoreUnavailable):
        await model.apply_batch(p, "inventory.devices|0", batch)
    assert await model.dimension("estate")  # the increments went in before the crash
    for consumer in (model, ReadModel(store), ReadModel(store)):  # retried; restarted twice
        await consumer.apply_batch(p, "inventory.devices|0", batch)
    expected = fold(events)
    live = await ReadModel(store).snapshot()
    assert live["dimensions"] == {d: c for d, c in expected.dimensions.items() if c}
    assert live["days"] == {d: c for d, c in expected.days.items() if c}
    assert live["entities"] == {e: {k: v for k, v in doc.items() if k != "_id"}
                                for e, doc in expected.entities.items()}


async def test_a_stale_consumer_cannot_write_over_a_newer_journal() -> None:
    events = history()
    p = projector()
    store = MemoryStore()
    old, new = ReadModel(store), ReadModel(store)
    await old.apply_batch(p, "inventory.devices|0", list(enumerate(events[:3])))
    await new.apply_batch(p, "inventory.devices|0", list(enumerate(events[:5])))  # took the partition over
    with pytest.raises(StaleJournal):
        await old.apply_batch(p, "inventory.devices|0", [(3, events[3]), (4, events[4])])
    await old.apply_batch(p, "inventory.devices|0", list(enumerate(events)))  # read again: goes on from 5
    expected = fold(events)
    assert (await ReadModel(store).snapshot())["dimensions"] == {d: c for d, c in expected.dimensions.items() if c}


class ListLog:
    """An event log of raw values, as a topic holds them (dead letters' originals included)."""

    def __init__(self, values: list[bytes]) -> None:
        self._values = values

    async def batches(self, topics: Any) -> Any:
        yield self._values


async def test_a_replay_skips_what_is_not_an_event_and_folds_the_rest() -> None:
    import json

    from services.reporting.replay import rebuild

    def raw(e: tuple[str, str, dict[str, Any], datetime]) -> bytes:
        return json.dumps({"id": e[0], "type": e[1], "data": e[2], "time": e[3].isoformat()}).encode()

    events = history()
    poison = [b"{not an envelope", b"[]", b'{"id": "x"}', b"\xff\xfe"]
    values = [raw(events[0]), *poison[:2], *(raw(e) for e in events[1:]), *poison[2:]]
    report = await rebuild(ListLog(values), ["inventory.devices"], projector(), ReadModel(MemoryStore(), "replay"))
    assert (report.events, report.unreadable) == (len(events), len(poison))
    clean = await rebuild(ListLog([raw(e) for e in events]), ["inventory.devices"], projector(),
                          ReadModel(MemoryStore(), "clean"))
    assert (clean.applied, clean.documents) == (report.applied, report.documents)
