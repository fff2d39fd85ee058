"""Migration commands, event handlers and the daily wave job: load through the repositories,
decide with the domain, save with the events (the repository keeps the outbox and the version
guard). Nothing is driven from memory alone: a restart picks every saga up from its record."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel

from contracts.common import Sanitisation
from contracts.envelope import Envelope
from contracts.inventory import DeviceRegisteredV1, DeviceSnapshot, DeviceUpdatedV1
from contracts.migration import Readiness, SagaState, WaveState
from contracts.procurement import DeliveryReceivedV1
from services.migration import domain
from services.migration import waves as wave_rules
from services.migration.domain import DeviceRecord, Policy, PolicySpec, Revised
from services.migration.executor import StepExecutor
from services.migration.store import IN_CHUNK, Counts, DeviceRecords, Placement, Policies, Sites, Waves, tally
from services.migration.waves import Wave, WaveSpec
from services.runtime.changes import Change
from services.runtime.clock import Clock
from services.runtime.errors import Conflict, FieldError, InvalidInput
from services.runtime.repository import AlreadyStored, Page, VersionedWrite
from services.runtime.store import Document, Store

log = logging.getLogger(__name__)
A = TypeVar("A", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")
CONCURRENCY = 50
REGISTERED = "inventory.device.registered.v1"
UPDATED = "inventory.device.updated.v1"
DEVICE_EVENTS = (REGISTERED, UPDATED)
PLAN_GRACE = timedelta(minutes=2)
"""How long a plan may take scheduling its devices before the wave job finishes it instead."""


class MigrationObserver:
    """Told what happened, for the service's metrics (no-ops by default)."""

    def assessed(self, outcome: Readiness) -> None: ...
    def step(self, step: str, ok: bool, seconds: float) -> None: ...
    def saga_ended(self, state: SagaState) -> None: ...
    def counted(self, readiness: dict[str, int], sagas: dict[str, int]) -> None: ...


@dataclass(frozen=True)
class PolicyView:
    policy: Policy
    warning: object | None
    reassessed: int | None = None


def _decide(decide: Callable[[], Change[A]]) -> Change[A]:
    """A domain decision, its refusals as problems (409 for a state that forbids it, else 422)."""
    try:
        return decide()
    except domain.StateError as error:
        raise Conflict(str(error)) from None
    except domain.DomainError as error:
        location = f"body.{error.field}" if error.field else "body"
        raise InvalidInput(str(error), [FieldError(location, str(error))]) from None


async def _gather(items: Sequence[T], act: Callable[[T], Awaitable[R]]) -> list[R]:
    found: list[R] = []
    for start in range(0, len(items), CONCURRENCY):
        found += await asyncio.gather(*(act(i) for i in items[start:start + CONCURRENCY]))
    return found


class MigrationHandlers:
    def __init__(self, store: Store, devices: DeviceRecords, waves: Waves, policies: Policies, clock: Clock,
                 executor: StepExecutor, *, max_attempts: int = 3, observer: MigrationObserver | None = None) -> None:
        self.devices = devices
        self.waves = waves
        self.policies = policies
        self.sites = Sites(store)
        self.counts = Counts(store)
        self._clock = clock
        self._executor = executor
        self._max_attempts = max_attempts
        self._observer = observer or MigrationObserver()

    # -- policy ---------------------------------------------------------------------------

    async def policy(self) -> Policy:
        return await self.policies.get("policy")

    async def set_policy(self, spec: PolicySpec, expected_version: int | None = None) -> PolicyView:
        """Store the policy, then reassess the devices the change concerns (all of them for a
        new target, minimum, scope or lifecycle; only those carrying a changed application
        for a catalogue change). Announces only the verdicts that changed."""
        current = await self.policies.load("policy")
        if current is None:
            try:
                policy = await self.policies.insert(domain.set_policy(None, spec, self._clock.now()))
            except AlreadyStored:
                raise Conflict("the policy was set concurrently; read it and retry") from None
        else:
            policy = await self.policies.mutate("policy", expected_version,
                                                lambda p: _decide(lambda: domain.set_policy(p, spec,
                                                                                            self._clock.now())))
        if current is not None and policy.version == current.version:
            return PolicyView(policy, domain.support_warning(policy), 0)
        count = await self.reassess(domain.affected_by(current, spec), policy)
        return PolicyView(policy, domain.support_warning(policy), count)

    async def reassess(self, affected: domain.Affected, policy: Policy) -> int:
        """Reassess every stored record the change concerns, a page at a time by ``_id`` (the
        page reads the records' applications only; the concerned records are read when reassessed)."""
        count, after = 0, None
        while True:
            applications, last = await self.devices.applications_page(after=after, limit=1000)
            concerned = [tag for tag, installed in applications.items() if affected.concerns(installed)]
            count += len(concerned)
            await _gather(concerned, lambda tag: self._reassess_one(tag, policy))
            if last is None:
                return count
            after = last

    async def _reassess_one(self, tag: str, policy: Policy) -> None:
        before: list[DeviceRecord] = []

        def decide(r: DeviceRecord) -> Change[DeviceRecord]:
            before[:] = [r]
            return domain.reassess(r, policy, self._clock.now())

        after = await self._mutate(tag, None, decide)
        await self._project(before[0] if before else None, after, policy)

    # -- devices from inventory -----------------------------------------------------------

    async def on_device(self, envelope: Envelope) -> None:
        """A device registered or updated in inventory: keep its facts, assess it."""
        device = _snapshot(envelope)
        policy = await self.policies.current()
        for attempt in range(3):
            # a registration is usually of a device migration has not seen: try the insert first
            fresh = attempt == 0 and envelope.type == REGISTERED
            record = None if fresh else await self.devices.load(device.asset_tag)
            change = domain.observe(record, device, policy, self._clock.now())
            if change is None:
                return
            if record is None:
                try:
                    after = await self.devices.insert(change)
                except AlreadyStored:
                    continue  # a concurrent delivery stored it first: decide on what it stored
                await self.counts.add(tally(None, after))
            else:
                after = await self._mutate(
                    device.asset_tag, None,
                    lambda r: domain.observe(r, device, policy, self._clock.now()) or Change(r))
            await self._project(record, after, policy)
            return

    async def on_devices(self, envelopes: Sequence[Envelope]) -> None:
        """Many device events of one partition together, with the same outcome and events as
        ``on_device`` one after the other: the policy read once, the records known read in one
        go, every decision taken in memory (a device's events in their order, folded into one
        write carrying all their events), then one bulk insert of the new records, one bulk
        version-guarded write of the changed ones and one bulk write of the site projection.
        A device whose write lost a race (stored meanwhile, or changed) goes through
        ``on_device``, its events in order. Idempotent as a whole: a redelivered event is
        older than the facts its record holds, and decides nothing."""
        by_tag: dict[str, list[tuple[Envelope, DeviceSnapshot]]] = {}
        for envelope in envelopes:
            by_tag.setdefault((device := _snapshot(envelope)).asset_tag, []).append((envelope, device))
        if not by_tag:
            return
        policy = await self.policies.current()
        # a device first seen registering is usually one migration has not seen: no read for it
        pending = list(by_tag)
        records = await self.devices.load_many(t for t in pending if by_tag[t][0][0].type != REGISTERED)
        for _ in range(2):  # then once more for those stored or changed meanwhile, read again
            pending = await self._assess_many({t: by_tag[t] for t in pending}, records, policy)
            if not pending:
                return
            records = await self.devices.load_many(pending)
        log.info("%d of %d devices kept changing while their batch was decided: one by one",
                 len(pending), len(by_tag))
        for tag in pending:
            for envelope, _ in by_tag[tag]:
                await self.on_device(envelope)

    async def _assess_many(self, by_tag: dict[str, list[tuple[Envelope, DeviceSnapshot]]],
                           records: dict[str, DeviceRecord], policy: Policy | None) -> list[str]:
        """Decide every device's events on its record as read (None: not stored), write the
        changes in bulk; returns the devices whose write lost a race."""
        now = self._clock.now()
        new_docs: list[Document] = []
        new_tags: list[str] = []
        writes: list[VersionedWrite[DeviceRecord]] = []
        steps: dict[str, list[tuple[DeviceRecord | None, DeviceRecord]]] = {}
        for tag, items in by_tag.items():
            record = records.get(tag)
            current, events = record, []
            for _, device in items:
                change = domain.observe(current, device, policy, now)
                if change is None:
                    continue
                steps.setdefault(tag, []).append((current, change.value))
                events += change.events
                current = change.value
            if current is None or current is record:
                continue
            if record is None:
                new_docs.append(self.devices.new_document(Change(current, events)))
                new_tags.append(tag)
            else:
                writes.append(VersionedWrite(Revised(current, events), record.version))
        refused = await self.devices.insert_documents(new_docs) if new_docs else set()
        landed = {t for i, t in enumerate(new_tags) if i not in refused} | await self.devices.write_many(writes)
        await self.sites.apply([p for tag in landed for before, after in steps[tag]
                                for p in self._placements(before, after, policy)])
        await self.counts.add(_total(tally(records.get(t), steps[t][-1][1]) for t in landed))
        return [t for t in steps if t not in landed]

    async def _project(self, before: DeviceRecord | None, after: DeviceRecord, policy: Policy | None) -> None:
        """Keep the site projection in step with the record's verdict (and its move, if any)."""
        for placement in self._placements(before, after, policy):
            if placement.leaves:
                await self.sites.leave(placement.site, placement.tag)
            else:
                await self.sites.place(placement.site, placement.borough, placement.tag, ready=placement.ready,
                                       awaiting=placement.awaiting)

    def _placements(self, before: DeviceRecord | None, after: DeviceRecord, policy: Policy | None) -> list[Placement]:
        """The site projection's writes for a record going from ``before`` to ``after`` (none when
        its verdict, site and replacement are unchanged); tells the observer of a new verdict."""
        outcome = after.readiness.outcome if after.readiness is not None else None
        if before is not None and before.readiness is not None and after.readiness is not None \
                and before.readiness.outcome == outcome and before.location == after.location \
                and before.replaced_by == after.replaced_by:
            return []
        if outcome is not None:
            self._observer.assessed(outcome)
        found = []
        if before is not None and before.location.site != after.location.site:
            found.append(Placement(before.location.site, after.asset_tag, leaves=True))
        ready = after.kind.value if outcome is Readiness.UPGRADE_IN_PLACE else None
        awaiting = None
        if outcome in domain.NEEDS_REPLACEMENT and after.replaced_by is None:
            kind = after.kind if outcome is Readiness.REPLACE or policy is None else policy.replacement_kind
            awaiting = kind.value
        found.append(Placement(after.location.site, after.asset_tag, after.location.borough, ready, awaiting))
        return found

    async def device(self, tag: str) -> DeviceRecord:
        return await self.devices.get(tag)

    async def device_page(self, *, after: str | None, limit: int) -> Page[DeviceRecord]:
        return await self.devices.page({}, after=after, limit=limit)

    # -- replacement and disposal ---------------------------------------------------------

    async def on_delivery(self, envelope: Envelope) -> None:
        """Each delivered device replaces the first device at the delivery's site awaiting a
        device of its kind; the site claims the pair in one write, so a redelivery finds the
        same pair and changes nothing."""
        delivery = DeliveryReceivedV1.model_validate(envelope.data)
        site = delivery.location.site
        for new in delivery.devices:
            old = await self.sites.claim(site, new.asset_tag, new.kind.value)
            if old is None:
                continue
            await self._mutate(old, None, lambda r, n=new: _decide(  # type: ignore[misc]
                lambda: domain.pair(r, n.asset_tag, n.kind, self._clock.now())))

    async def request_disposal(self, tag: str, record: Sanitisation, expected_version: int | None) -> DeviceRecord:
        return await self._mutate(tag, expected_version, lambda r: _decide(
            lambda: domain.request_disposal(r, record, self._clock.now())))

    # -- waves ----------------------------------------------------------------------------

    async def plan_wave(self, spec: WaveSpec) -> Wave:
        policy = await self.policies.load("policy")
        if policy is None:
            raise Conflict("no migration policy is set; set one before planning waves")
        sites: dict[str, Document] = {}
        for i, name in enumerate(spec.sites):
            doc = await self.sites.get(name)
            if doc is None:
                raise InvalidInput(f"unknown site {name!r}", [FieldError(f"body.sites.{i}", "no device at this site")])
            sites[name] = doc
        if spec.boroughs:
            found = await self.sites.in_boroughs(spec.boroughs)
            missing = sorted(set(spec.boroughs) - {str(d.get("borough")) for d in found})
            if missing:
                raise InvalidInput(f"no device is recorded in borough {missing[0]!r}",
                                   [FieldError("body.boroughs", f"unknown borough {missing[0]!r}")])
            sites.update((str(d["_id"]), d) for d in found)
        kinds = {k.value for k in (spec.kinds or policy.scope)}
        tags = sorted(t for d in sites.values() for t, k in (d.get("ready") or {}).items() if k in kinds)
        records = await self._first_plannable(tags, spec.max_devices)
        free = [t for t in tags if t in records and _plannable(records[t])][:spec.max_devices]
        if spec.gate is not None:
            await self.waves.get(spec.gate.after_wave)
        wave_id = f"W-{uuid.uuid4().hex[:8].upper()}"
        wave = await self.waves.insert(_decide(lambda: wave_rules.plan_wave(wave_id, spec, free, self._clock.now())))
        scheduled = await self._schedule_many(wave, list(enumerate(wave.devices)), policy, records)
        kept = [t for t, ok in zip(wave.devices, scheduled, strict=True) if ok]
        return await self.waves.mutate(wave_id, None, lambda w: _refit(w, kept))

    async def _first_plannable(self, tags: list[str], wanted: int | None) -> dict[str, DeviceRecord]:
        """The records of ``tags``, read in order only until ``wanted`` of them are plannable
        (a capped wave over a large scope reads what it takes, not every ready device): each
        read asks for as many as are still wanted, and for twice the last read when that found
        too few (devices in a wave already), up to ``IN_CHUNK`` a query."""
        if wanted is None:
            return await self.devices.load_many(tags)
        records: dict[str, DeviceRecord] = {}
        free, start, size = 0, 0, 0
        while start < len(tags) and free < wanted:
            size = min(IN_CHUNK, max(wanted - free, 2 * size))
            chunk = tags[start:start + size]
            found = await self.devices.load_many(chunk)
            records.update(found)
            free += sum(1 for r in found.values() if _plannable(r))
            start += len(chunk)
        return records

    async def _finish_plan(self, wave: Wave) -> None:
        """A plan interrupted (the process stopped while it scheduled the wave's devices):
        schedule them again (a device scheduled already is left as it is) and let the wave run."""
        policy = await self.policies.get("policy")
        scheduled = await self._schedule_many(wave, list(enumerate(wave.devices)), policy)
        kept = [t for t, ok in zip(wave.devices, scheduled, strict=True) if ok]
        await self.waves.mutate(wave.wave_id, None, lambda w: _refit(w, kept))

    async def _schedule_many(self, wave: Wave, pairs: list[tuple[int, str]], policy: Policy,
                             read: dict[str, DeviceRecord] | None = None) -> list[bool]:
        """Schedule each (index, tag) of ``wave`` on its day, in one bulk write; whether each is
        in the wave (False: not stored, or in another wave or migrated already). ``read``: the
        records as just read, if they were (a record changed since loses its version-guarded
        write and is read and decided again)."""
        day = {tag: wave.day_of(index) for index, tag in pairs}
        refused: set[str] = set()
        now = self._clock.now()

        def decide(r: DeviceRecord) -> Change[DeviceRecord]:
            refused.discard(r.asset_tag)
            try:
                return domain.schedule(r, wave.wave_id, day[r.asset_tag], policy.target, now)
            except domain.StateError:
                refused.add(r.asset_tag)
                return Change(r)

        records = {t: read[t] for t in day if t in read} if read is not None else await self.devices.load_many(day)
        await self._mutate_many(list(records.values()), decide)
        return [t in records and t not in refused for _, t in pairs]

    async def _mutate_many(self, records: Sequence[DeviceRecord],
                           decide: Callable[[DeviceRecord], Change[DeviceRecord]]) -> dict[str, DeviceRecord]:
        """``devices.mutate`` for many records read already: each decided on the record as
        read, the changes written in one version-guarded bulk write; those that lost a race are
        read and decided again one by one. Returns each record as it then stands."""
        after: dict[str, DeviceRecord] = {}
        writes: list[VersionedWrite[DeviceRecord]] = []
        for record in records:
            change = decide(record)
            if change.changed:
                writes.append(VersionedWrite(change, record.version))
            after[record.asset_tag] = change.value
        landed = await self.devices.write_many(writes)
        lost = [w.change.value.asset_tag for w in writes if w.change.value.asset_tag not in landed]
        await self.counts.add(_total(tally(r, after[r.asset_tag]) for r in records if r.asset_tag in landed))
        if lost:
            after.update(zip(lost, await _gather(lost, lambda t: self._mutate(t, None, decide)), strict=True))
        return after

    async def _mutate(self, tag: str, expected_version: int | None,
                      decide: Callable[[DeviceRecord], Change[DeviceRecord]]) -> DeviceRecord:
        """``devices.mutate``, the change counted (on the record it was decided on)."""
        seen: list[DeviceRecord] = []

        def counted(record: DeviceRecord) -> Change[DeviceRecord]:
            seen[:] = [record]
            return decide(record)

        after = await self.devices.mutate(tag, expected_version, counted)
        if seen and after is not seen[0]:
            await self.counts.add(tally(seen[0], after))
        return after

    async def refresh_counts(self) -> None:
        """Tell the observer the stored counts (the gauges' values: one read by ``_id``)."""
        self._observer.counted(*await self.counts.get())

    async def wave(self, wave_id: str) -> Wave:
        return await self.waves.get(wave_id)

    async def all_waves(self) -> list[Wave]:
        return await self.waves.every()

    async def pause(self, wave_id: str, reason: str | None, expected_version: int | None) -> Wave:
        return await self.waves.mutate(wave_id, expected_version, lambda w: _decide(
            lambda: wave_rules.pause_wave(w, reason, self._clock.now())))

    async def resume(self, wave_id: str, expected_version: int | None) -> Wave:
        now = self._clock.now()
        wave = await self.waves.mutate(wave_id, expected_version, lambda w: _decide(
            lambda: wave_rules.resume_wave(w, now.date(), now)))
        policy = await self.policies.get("policy")
        await self._schedule_many(wave, list(enumerate(wave.devices))[wave.started:], policy)
        return wave

    async def cancel(self, wave_id: str, reason: str | None, expected_version: int | None) -> Wave:
        wave = await self.waves.mutate(wave_id, expected_version, lambda w: _decide(
            lambda: wave_rules.cancel_wave(w, reason, self._clock.now())))
        why = f"wave cancelled: {reason}" if reason else "wave cancelled"
        now = self._clock.now()
        pending = await self.devices.load_many(wave.devices[wave.started:])
        await self._mutate_many(list(pending.values()), lambda r: domain.unschedule(r, why[:120], now))
        return wave

    async def recommend_pilot(self, sites: list[str]) -> tuple[list[str], set[str], int]:
        """Devices at ``sites`` ready to upgrade that cover every critical application and
        hardware model found there; with how many items there were to cover."""
        policy = await self.policy()
        critical = {n for n, e in policy.catalogue.items() if e.critical}
        tags = []
        for site in sites:
            doc = await self.sites.get(site)
            if doc is None:
                raise InvalidInput(f"unknown site {site!r}", [FieldError("query.site", "no device at this site")])
            tags += list(doc.get("ready") or {})
        records = await self.devices.load_many(tags)
        items = {t: {f"app:{a}" for a in r.applications if a in critical} | {f"model:{r.hardware.model}"}
                 for t, r in records.items() if r.wave_id is None}
        must = set().union(*items.values()) if items else set()
        chosen, missing = wave_rules.recommend_pilot(items, must)
        return chosen, missing, len(must)

    # -- the wave job ---------------------------------------------------------------------

    async def advance(self) -> None:
        """One turn of every wave that has work: start it when due and its gate is open, run
        the due step of each active device, count the ended ones, admit the day's devices."""
        waves = await self.waves.unfinished()
        by_id = {w.wave_id: w for w in waves}
        now = self._clock.now()
        for wave in waves:
            if not wave.ready:  # still being planned, or its planning was interrupted
                if wave.planned_at is None or now - wave.planned_at > PLAN_GRACE:
                    await self._finish_plan(wave)
                continue
            if wave.state in wave_rules.TERMINAL_WAVES and not wave.active:
                continue
            await self._advance_wave(wave, by_id)

    async def _advance_wave(self, wave: Wave, by_id: dict[str, Wave]) -> None:
        now = self._clock.now()
        if wave.state is WaveState.PLANNED:
            previous = None if wave.gate is None else (
                by_id.get(wave.gate.after_wave) or await self.waves.load(wave.gate.after_wave))
            wave = await self.waves.mutate(wave.wave_id, None, lambda w: wave_rules.start_wave(
                w, now.date(), wave_rules.gate_open(w, previous), now))
        records = await self.devices.load_many(wave.active)
        results = await self._steps(list(records.values()), wave.wave_id)
        ended = {r.asset_tag: state for r in results if (state := _ended_in(r, wave.wave_id)) is not None}
        ended.update({t: SagaState.FAILED for t in wave.active if t not in records})  # vanished: counted failed
        before = wave.started
        wave = await self.waves.mutate(wave.wave_id, None, lambda w: wave_rules.take_turn(w, now.date(), ended, now))
        admitted = await self.devices.load_many(wave.devices[before:wave.started])
        await self._mutate_many(list(admitted.values()), lambda r: _start(r, wave.wave_id, now))

    async def _steps(self, records: list[DeviceRecord], wave_id: str) -> list[DeviceRecord]:
        """One turn of each device's saga in ``wave_id``: its start if that was not stored (an
        interrupted turn), else its next step if due; the outcomes written in one bulk write."""
        now = self._clock.now()
        decisions: dict[str, Callable[[DeviceRecord], Change[DeviceRecord]]] = {}
        due: list[DeviceRecord] = []
        for record in records:
            saga = record.saga
            if saga is None or saga.wave_id != wave_id or saga.ended:
                continue
            if not saga.started:
                decisions[record.asset_tag] = lambda r: _start(r, wave_id, now)
            elif saga.next_step is not None and (saga.due_at is None or saga.due_at <= now):
                due.append(record)

        async def run(record: DeviceRecord) -> None:
            assert record.saga is not None and record.saga.next_step is not None
            step, attempt = record.saga.next_step, record.saga.attempt
            started = time.perf_counter()
            result = await self._executor.run(record.asset_tag, step, attempt)
            self._observer.step(step.value, result.ok, time.perf_counter() - started + result.duration_s)
            decisions[record.asset_tag] = lambda r: domain.step_done(r, step, attempt, result, self._max_attempts,
                                                                     self._clock.now())

        await _gather(due, run)
        after = await self._mutate_many([r for r in records if r.asset_tag in decisions],
                                        lambda r: decisions[r.asset_tag](r))
        for record in records:
            now_saga = after[record.asset_tag].saga if record.asset_tag in after else None
            if now_saga is not None and now_saga.ended and record.saga is not None and not record.saga.ended:
                self._observer.saga_ended(now_saga.state)
        return [after.get(r.asset_tag, r) for r in records]


def _total(deltas: Iterable[Counter[str]]) -> Counter[str]:
    """The deltas added up, negative counts kept (``Counter``'s ``+`` drops them)."""
    total: Counter[str] = Counter()
    for delta in deltas:
        total.update(delta)
    return total


def _snapshot(envelope: Envelope) -> DeviceSnapshot:
    if envelope.type == REGISTERED:
        return DeviceRegisteredV1.model_validate(envelope.data).device
    return DeviceUpdatedV1.model_validate(envelope.data).device


def _plannable(record: DeviceRecord) -> bool:
    """Ready to upgrade in place, in no wave, not migrated already."""
    return (record.wave_id is None and record.readiness is not None
            and record.readiness.outcome is Readiness.UPGRADE_IN_PLACE
            and (record.saga is None or record.saga.state is not SagaState.MIGRATED))


def _ended_in(record: DeviceRecord, wave_id: str) -> SagaState | None:
    """How the device's saga in ``wave_id`` ended (unscheduled if it left the wave for another),
    or None while it runs."""
    saga = record.saga
    if saga is None or saga.wave_id != wave_id:
        return SagaState.UNSCHEDULED
    return saga.state if saga.ended else None


def _start(record: DeviceRecord, wave_id: str, now: datetime) -> Change[DeviceRecord]:
    if record.saga is None or record.saga.wave_id != wave_id:  # left the wave before its day
        return Change(record)
    try:
        return domain.start(record, now)
    except domain.StateError:  # taken out of the wave meanwhile
        return Change(record)


def _refit(wave: Wave, kept: list[str]) -> Change[Wave]:
    """The wave once its devices are scheduled, without those lost to a concurrent plan
    (written, not announced: the devices lost were never scheduled in it)."""
    if wave.ready and wave.devices == kept:
        return Change(wave)
    return domain.Revised(wave.model_copy(update={"devices": kept, "ready": True, "version": wave.version + 1}), [])

