"""Device events assessed a batch at a time (``on_devices``) end exactly as one by one
(``on_device``): the same records, the same events in each device's order, the same site
projection and verdict counts; a redelivered batch changes nothing; a device changed while its
batch was decided is decided again on what was stored."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.envelope import Envelope, new_envelope
from contracts.migration import Compatibility, Readiness
from services.inventory import domain as inventory
from services.inventory.domain import Device, DevicePatch, DeviceSpec
from services.migration.executor import SimulatedExecutor
from services.migration.handlers import MigrationHandlers, MigrationObserver
from services.migration.sample_policy import sample_policy
from services.migration.store import DeviceRecords, Placement, Policies, Waves
from services.migration.waves import WaveSpec
from services.runtime.clock import FixedClock
from services.runtime.runtime import Runtime
from services.runtime.settings import Settings
from services.runtime.store.memory import MemoryStore
from tests.samples import device_body

pytestmark = pytest.mark.asyncio
NOW = datetime(2015, 8, 3, 9, tzinfo=UTC)
GOOD: dict[str, Any] = device_body()["hardware"]
WEAK = {**GOOD, "ram_mb": 1024}
ELSEWHERE = {"site": "Brixton Police Station", "borough": "Lambeth", "unit": "Territorial Policing"}


class Verdicts(MigrationObserver):
    def __init__(self) -> None:
        self.counts: Counter[Readiness] = Counter()

    def assessed(self, outcome: Readiness) -> None:
        self.counts[outcome] += 1


class Setup:
    def __init__(self) -> None:
        self.runtime = Runtime.build(Settings(), clock=FixedClock(NOW))
        relay, clock = self.runtime.relay, self.runtime.clock
        self.verdicts = Verdicts()
        self.handlers = MigrationHandlers(self.runtime.store, DeviceRecords(self.runtime.store, relay, clock),
                                          Waves(self.runtime.store, relay, clock),
                                          Policies(self.runtime.store, relay, clock), clock, SimulatedExecutor(),
                                          observer=self.verdicts)

    async def state(self) -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, str, str, dict[str, Any]]]],
                                   list[dict[str, Any]]]:
        """Records (without their outbox), each record's events (topic, key, type, data) in
        order, and the site projection."""
        docs = await self.handlers.devices.collection.find({}, sort=[("_id", 1)])
        events = {d["_id"]: [(e["topic"], e["key"], e["type"], json.loads(e["event"])["data"])
                             for e in d.get("outbox", [])] for d in docs}
        records = [{k: v for k, v in d.items() if k != "outbox"} for d in docs]
        sites = await self.handlers.sites.collection.find({}, sort=[("_id", 1)])
        return records, events, sites


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Setup, Setup]]:
    one, many = Setup(), Setup()
    for s in (one, many):
        await s.handlers.set_policy(sample_policy())
    yield one, many
    for s in (one, many):
        await s.runtime.store.close()


def _envelope(change: inventory.Change) -> Envelope:
    [(name, data)] = change.events
    return new_envelope(type=name, source="/estate/inventory", subject=change.value.asset_tag, time=NOW, data=data)


def registered(tag: str, **over: Any) -> tuple[Device, Envelope]:
    change = inventory.register(DeviceSpec.model_validate(device_body(tag, **over)), NOW)
    return change.value, _envelope(change)


def updated(device: Device, **patch: Any) -> tuple[Device, Envelope]:
    change = inventory.update(device, DevicePatch.model_validate(patch), NOW)
    return change.value, _envelope(change)


def traffic() -> tuple[list[Envelope], list[Envelope]]:
    """Registrations of every kind of verdict, then updates (several per device, a device
    registered and updated within one batch, a move of site, a device fixed then broken)."""
    first: list[Envelope] = []
    devices: dict[str, Device] = {}
    kinds: list[tuple[str, dict[str, Any]]] = [("MPS-D-100001", {}), ("MPS-D-100002", {"hardware": WEAK}),
                      ("MPS-D-100003", {"applications": ["NSPIS Custody"]}),
                      ("MPS-D-100004", {"os": {"family": "windows", "version": "8.1"}}),
                      ("MPS-D-100005", {"hardware": {**WEAK, "cpu_cores": 1}})]
    for tag, over in kinds:
        devices[tag], envelope = registered(tag, **over)
        first.append(envelope)
    second: list[Envelope] = []
    devices["MPS-D-100001"], e1 = updated(devices["MPS-D-100001"], location=ELSEWHERE)
    devices["MPS-D-100002"], e2 = updated(devices["MPS-D-100002"], hardware=GOOD)
    devices["MPS-D-100002"], e3 = updated(devices["MPS-D-100002"], hardware=WEAK)
    devices["MPS-D-100003"], e4 = updated(devices["MPS-D-100003"], applications=["CRIS Crime Reporting"])
    devices["MPS-D-100006"], e5 = registered("MPS-D-100006", hardware=WEAK)
    devices["MPS-D-100006"], e6 = updated(devices["MPS-D-100006"], hardware=GOOD)
    devices["MPS-D-100001"], e7 = updated(devices["MPS-D-100001"], applications=["MERLIN Vulnerable Persons"])
    second += [e1, e2, e5, e3, e4, e6, e7]
    return first, second


async def test_a_batch_ends_as_one_by_one_with_the_same_events_in_each_devices_order(
        pair: tuple[Setup, Setup]) -> None:
    one, many = pair
    first, second = traffic()
    for envelope in first + second:
        await one.handlers.on_device(envelope)
    await many.handlers.on_devices(first[:2])
    await many.handlers.on_devices(first[2:] + second[:3])  # updates with the registrations
    await many.handlers.on_devices(second[3:])
    expected = await one.state()
    assert await many.state() == expected
    assert many.verdicts.counts == one.verdicts.counts
    records, events, sites = expected
    assert len(records) == 6 and sum(map(len, events.values())) > 10
    assert [t for _, _, t, _ in events["MPS-D-100002"]] == [
        "migration.device.assessed.v1", "migration.replacement.needed.v1", "migration.device.assessed.v1",
        "migration.device.assessed.v1"]
    assert [d["outcome"] for _, _, t, d in events["MPS-D-100002"] if t.endswith("assessed.v1")] == [
        "dispose", "upgrade_in_place", "dispose"]
    assert {s["_id"] for s in sites} == {"Hammersmith Police Station", "Brixton Police Station"}


async def test_a_redelivered_batch_changes_nothing(pair: tuple[Setup, Setup]) -> None:
    _, many = pair
    first, second = traffic()
    await many.handlers.on_devices(first + second)
    before, counts = await many.state(), Counter(many.verdicts.counts)
    await many.handlers.on_devices(first + second)
    await many.handlers.on_devices(second[2:])
    for envelope in first + second:  # and one by one, as the bus does after a failed batch
        await many.handlers.on_device(envelope)
    assert await many.state() == before
    assert many.verdicts.counts == counts


async def test_a_device_changed_while_its_batch_was_decided_is_decided_again(pair: tuple[Setup, Setup]) -> None:
    one, many = pair
    first, second = traffic()
    for envelope in first + second:
        await one.handlers.on_device(envelope)
    for envelope in first:
        await many.handlers.on_device(envelope)
    records = many.handlers.devices
    real_load_many = records.load_many

    async def load_then_race(keys: Any) -> Any:
        """Reads the records, then a concurrent delivery applies the first update first."""
        found = await real_load_many(keys)
        if found and not raced:
            raced.append(True)
            await many.handlers.on_device(second[0])
        return found

    raced: list[bool] = []
    records.load_many = load_then_race  # type: ignore[method-assign]
    await many.handlers.on_devices(second)
    assert raced
    assert await many.state() == await one.state()


async def test_site_placements_in_one_write_end_as_in_order() -> None:
    store = MemoryStore()
    runtime = Runtime.build(Settings(), clock=FixedClock(NOW))
    relay, clock = runtime.relay, runtime.clock
    handlers = MigrationHandlers(store, DeviceRecords(store, relay, clock), Waves(store, relay, clock),
                                 Policies(store, relay, clock), clock, SimulatedExecutor())
    placements = [Placement("A", "T1", "B1", ready="desktop"), Placement("A", "T2", "B1", awaiting="laptop"),
                  Placement("A", "T1", leaves=True), Placement("C", "T1", "B2", ready="desktop"),
                  Placement("A", "T2", "B1", ready="desktop"), Placement("D", "T3", leaves=True)]
    await handlers.sites.apply(placements)
    in_order = MemoryStore()
    sites = type(handlers.sites)(in_order)
    for p in placements:
        if p.leaves:
            await sites.leave(p.site, p.tag)
        else:
            await sites.place(p.site, p.borough, p.tag, ready=p.ready, awaiting=p.awaiting)

    def entries(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:  # an emptied map is as good as none
        return [{k: v for k, v in d.items() if v != {}} for d in docs]

    assert entries(await handlers.sites.collection.find({}, sort=[("_id", 1)])) == \
        entries(await sites.collection.find({}, sort=[("_id", 1)]))


async def test_a_wave_whose_bulk_step_write_loses_a_race_still_runs_each_step_once(
        pair: tuple[Setup, Setup]) -> None:
    _, setup = pair
    handlers = setup.handlers
    devices: dict[str, Device] = {}
    for n in range(3):
        tag = f"MPS-D-20000{n}"
        devices[tag], envelope = registered(tag)
        await handlers.on_device(envelope)
    wave = await handlers.plan_wave(WaveSpec.model_validate({
        "name": "race", "sites": ["Hammersmith Police Station"], "start_date": NOW.date().isoformat(),
        "daily_capacity": 3}))
    assert len(wave.devices) == 3
    real_write_many = handlers.devices.write_many
    raced: list[str] = []

    async def race_then_write(writes: Any) -> Any:
        """A concurrent change of the first device lands between the turn's read and its write."""
        if writes and len(raced) < 2:
            tag = writes[0].change.value.asset_tag
            raced.append(tag)
            devices[tag], envelope = updated(devices[tag], applications=[f"Tool {len(raced)}"])
            await handlers.on_device(envelope)
        return await real_write_many(writes)

    handlers.devices.write_many = race_then_write  # type: ignore[method-assign]
    for _ in range(10):
        await handlers.advance()
    assert len(raced) == 2
    wave = await handlers.wave(wave.wave_id)
    assert wave.state.value == "completed" and wave.progress().migrated == 3
    _, events, _ = await setup.state()
    for tag in wave.devices:
        steps = [d["step"] for _, _, t, d in events[tag] if t == "migration.device.step_completed.v1"]
        assert steps == ["back_up", "deploy_os", "verify"], tag
        assert [t for _, _, t, _ in events[tag]].count("migration.device.migrated.v1") == 1


async def test_a_catalogue_change_reassesses_exactly_the_concerned_devices_across_pages(
        pair: tuple[Setup, Setup]) -> None:
    """2,500 records (three reassessment pages): every 7th, and those either side of each page
    boundary, carry the application the change makes compatible; exactly those are reassessed."""
    _, many = pair
    tags = [f"MPS-D-2{n:05d}" for n in range(2500)]
    blocked = set(tags[::7]) | {tags[n] for n in (999, 1000, 1999, 2000, 2499)}
    await many.handlers.on_devices([registered(t, applications=["NSPIS Custody"] if t in blocked else [])[1]
                                    for t in tags])
    policy = sample_policy()
    catalogue = {**policy.catalogue,
                 "NSPIS Custody": policy.catalogue["NSPIS Custody"].model_copy(
        update={"compatibility": Compatibility.COMPATIBLE})}
    view = await many.handlers.set_policy(policy.model_copy(update={"catalogue": catalogue}))
    assert view.reassessed == len(blocked)
    records = await many.handlers.devices.load_many(tags)
    outcomes = Counter((t in blocked, r.readiness.outcome if r.readiness else None) for t, r in records.items())
    assert outcomes == {(True, Readiness.UPGRADE_IN_PLACE): len(blocked),
                        (False, Readiness.UPGRADE_IN_PLACE): len(tags) - len(blocked)}
    assert all(records[t].readiness.policy_version == 2 for t in blocked)  # type: ignore[union-attr]
    assert all(records[t].readiness.policy_version == 1 for t in set(tags) - blocked)  # type: ignore[union-attr]


async def test_a_capped_wave_reads_the_records_it_takes_not_a_whole_chunk(pair: tuple[Setup, Setup]) -> None:
    """1,200 devices ready at one site: a wave of 5 reads about 5 records, and the next wave
    of 5 reads past the first wave's devices (in a wave: not plannable) to the next five."""
    _, many = pair
    tags = [f"MPS-D-3{n:05d}" for n in range(1200)]
    await many.handlers.on_devices([registered(t)[1] for t in tags])
    real_load_many = many.handlers.devices.load_many
    read: list[int] = []

    async def counted(keys: Any) -> Any:
        found = await real_load_many(keys)
        read.append(len(found))
        return found

    many.handlers.devices.load_many = counted  # type: ignore[method-assign]
    spec = {"sites": ["Hammersmith Police Station"], "start_date": NOW.date().isoformat(), "daily_capacity": 5,
            "max_devices": 5}
    first = await many.handlers.plan_wave(WaveSpec.model_validate({**spec, "name": "first"}))
    assert first.devices == tags[:5]
    assert sum(read) <= 10, read
    read.clear()
    second = await many.handlers.plan_wave(WaveSpec.model_validate({**spec, "name": "second"}))
    assert second.devices == tags[5:10]
    assert sum(read) <= 20, read
