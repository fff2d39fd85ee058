"""Runs the programme on the platform, a simulated day at a time.

All four services run in this process on one runtime with a ``FixedClock`` the driver moves:
embedded (in-process bus, embedded store) by default, or on Kafka and the MongoDB-wire store
with distributed settings (``real_stack.py``). Each day it acts as the programme's people would, through the
services' handlers (the same calls their HTTP routes make): fix the applications due that day
(a policy change, which migration reassesses), buy (submit, approve, order the replacement
drafts migration's needs created; the rollouts' requests), deliver (replacements to the sites
whose devices await them, which migration pairs and inventory retires; new tablets and cameras),
dispose of replaced devices with their sanitisation record, plan the week's wave. Then the
migration wave job runs until the day's sagas are done, and the bus is left to settle (every
event published and consumed) before the clock moves on. The figures come from the reporting
service alone, which sees nothing but the events.

Costs: the driver reads what it needs by ``_id`` (the legacy count is one reporting dimension;
the waves it planned and has not seen finish), never a whole collection per day, and "idle"
is event-driven on both buses (the in-process bus counts what each group has still to handle;
the Kafka bus compares the offsets this process published with those its groups handled).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any, Protocol, cast

from contracts.common import LONDON_BOROUGHS, DeviceKind, Sanitisation
from contracts.migration import Compatibility
from contracts.procurement import ApprovalKind, AwardRoute, RequestState, SpendCategory, SpendClass
from services.inventory.sample_estate import CENTRAL_UNITS, as_rows, generate
from services.migration.domain import PolicySpec
from services.migration.waves import TERMINAL_WAVES, WaveSpec
from services.procurement.domain import AwardSpec
from services.procurement.purchases import DeliveredItem, DeliveryNote, RequestSpec, Submission
from services.registry import units
from services.runtime.bus.delivery import RetryPolicy
from services.runtime.bus.kafka import KafkaBus
from services.runtime.clock import FixedClock
from services.runtime.errors import Conflict, InvalidInput
from services.runtime.metrics import Metrics
from services.runtime.runtime import Runtime, ServiceUnit
from services.runtime.settings import Mode, Settings
from services.runtime.telemetry import Telemetry
from services.scenario.plan import MODEL, UNIT_PRICE_PENCE, ScenarioPlan, calibrate, spread, tranches, weekly_wave

WAVE_JOB = "migration waves"
LEGACY_DIMENSION = "os:windows:XP"
"""Reporting's dimension of the legacy devices (its "os" table's windows/XP row), read by ``_id``."""
DAILY_JOBS = (WAVE_JOB,)
GAUGES_JOB = "reporting gauges"
"""Left out of the weekly run: it refreshes Prometheus gauges (nobody scrapes a simulation) at
the price of a 10,000-run forecast; the figures come from reporting at the end."""
MAX_TURNS = 12
"""Wave-job turns a day at most (a saga takes four; retries take a few more)."""
QUIET = 10 ** 6
"""Seconds between the periodic jobs' own timer runs: the driver runs them itself."""

HARDWARE: dict[DeviceKind, dict[str, Any]] = {
    DeviceKind.DESKTOP: {"model": MODEL[DeviceKind.DESKTOP], "cpu_model": "Core i5-4570", "cpu_arch": "x64",
                         "cpu_cores": 4, "ram_mb": 8192, "disk_gb": 500, "tpm": "2.0", "firmware": "uefi"},
    DeviceKind.LAPTOP: {"model": MODEL[DeviceKind.LAPTOP], "cpu_model": "Core i5-4300U", "cpu_arch": "x64",
                        "cpu_cores": 2, "ram_mb": 8192, "disk_gb": 256, "tpm": "1.2", "firmware": "uefi"},
    DeviceKind.TABLET: {"model": MODEL[DeviceKind.TABLET], "cpu_model": "Atom x7-Z8700", "cpu_arch": "x64",
                        "cpu_cores": 4, "ram_mb": 4096, "disk_gb": 128, "tpm": "2.0", "firmware": "uefi"},
    DeviceKind.BODY_WORN_CAMERA: {"model": MODEL[DeviceKind.BODY_WORN_CAMERA], "cpu_model": "ARM Cortex-A9",
                                  "cpu_arch": "arm64", "cpu_cores": 1, "ram_mb": 256, "disk_gb": 32,
                                  "tpm": "none", "firmware": "vendor"},
}
OS: dict[DeviceKind, dict[str, str]] = {
    DeviceKind.DESKTOP: {"family": "windows", "version": "8.1"},
    DeviceKind.LAPTOP: {"family": "windows", "version": "8.1"},
    DeviceKind.TABLET: {"family": "windows", "version": "8.1"},
    DeviceKind.BODY_WORN_CAMERA: {"family": "camera_firmware", "version": "1.12"},
}
TAG_PREFIX = {DeviceKind.DESKTOP: "MPS-ND", DeviceKind.LAPTOP: "MPS-NL", DeviceKind.TABLET: "MPS-NT",
              DeviceKind.BODY_WORN_CAMERA: "MPS-NC"}
PEOPLE = {"requester": "programme-office", "approvers": ("head-of-it", "finance-director"),
          ApprovalKind.BOARD: "management-board", ApprovalKind.SPEND_CONTROL: "cabinet-office-spend-control"}


@dataclass
class Progress:
    day: date
    done: int
    total: int
    legacy: int
    target: int


@dataclass
class ScenarioResult:
    plan: ScenarioPlan
    summary: dict[str, Any]
    legacy_by_day: dict[date, float]
    kinds: list[list[Any]]
    deliveries: list[list[Any]]
    checks: list[Any]
    events: int
    wall_s: float
    waves: int
    orders: int

    @property
    def calibrated(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class _Line:
    need_id: str
    site: str
    borough: str | None
    kind: DeviceKind
    request_id: str
    due: date


@dataclass
class _State:
    waiting: deque[_Line] = field(default_factory=deque)
    """Replacement lines ordered, not yet delivered."""
    to_dispose: list[tuple[date, str]] = field(default_factory=list)
    wave: tuple[str, int, int] | None = None
    """This week's wave: id, its devices, its daily capacity."""
    next_tag: dict[DeviceKind, int] = field(default_factory=dict)
    contracts: dict[str, str] = field(default_factory=dict)
    """Framework id -> the call-off the driver buys through now."""
    waves: int = 0
    orders: int = 0
    fixed: set[str] = field(default_factory=set)
    open_waves: set[str] = field(default_factory=set)
    """Waves the driver planned that have not finished (ended with no device active)."""


class _Settling(Protocol):
    """What the driver needs of a bus to know it is idle (both adapters have it)."""

    def published(self) -> int: ...

    async def idle(self) -> None: ...


def build_runtime(plan: ScenarioPlan, clock: FixedClock, settings: Settings | None = None,
                  units_: list[ServiceUnit] | None = None) -> Runtime:
    """All four services on one runtime: embedded by default; with distributed ``settings``, on
    the Kafka and MongoDB-wire store they name (the consumer groups start at the topics' end,
    so what earlier runs left there is not counted)."""
    # One process publishes everything: its outbox leases need no renewal (a lease that lapsed
    # while the loop was busy, say with a 5,000-row import chunk, costs a scan of every collection).
    settings = (settings or Settings()).model_copy(update={"outbox_scan_interval_s": QUIET, "outbox_lease_s": QUIET})
    overrides = {"wave_interval_s": QUIET, "reporting_refresh_s": QUIET, "expiry_check_interval_s": QUIET,
                 "executor_seed": plan.seed, "load_sample_estate": False, "load_sample_policy": True}
    bus = None
    if settings.mode is Mode.DISTRIBUTED:
        telemetry = Telemetry(settings.service_name, settings.otlp_endpoint)
        bus = KafkaBus(bootstrap=settings.kafka_bootstrap, client_id=settings.kafka_client_id,
                       partitions=settings.topic_partitions,
                       policy=RetryPolicy(settings.consumer_max_attempts, settings.consumer_backoff_initial_s,
                                          settings.consumer_backoff_max_s),
                       telemetry=telemetry, metrics=Metrics(),
                       topics=[t for u in (units_ or units()) for t in u.publishes], new_groups_from_end=True)
    return Runtime.build(settings, clock=clock, setting_overrides=overrides, bus=bus)


class ScenarioDriver:
    def __init__(self, plan: ScenarioPlan, *, on_progress: Callable[[Progress], None] | None = None,
                 settings: Settings | None = None) -> None:
        self.plan = plan
        self.clock = FixedClock(datetime.combine(plan.start, day_time(7), UTC))
        self.units = units()
        self.runtime = build_runtime(plan, self.clock, settings, self.units)
        self._on_progress = on_progress
        self._state = _State()
        self._targets = plan.targets()

    # -- the services ----------------------------------------------------------------------

    @property
    def inventory(self) -> Any:
        return self.runtime.services["inventory"]

    @property
    def migration(self) -> Any:
        return self.runtime.services["migration"]

    @property
    def procurement(self) -> Any:
        return self.runtime.services["procurement"]

    @property
    def reporting(self) -> Any:
        return self.runtime.services["reporting"]

    async def settle(self) -> None:
        """Until nothing moves: every stored event published, every published event consumed."""
        bus = cast(_Settling, self.runtime.bus)
        while True:
            before = bus.published()
            await self.runtime.relay.drain()
            await bus.idle()
            # what the handlers stored meanwhile is published before "nothing moved" is believed
            # (on Kafka a publish takes a while: the count moves only once the broker has it)
            await self.runtime.relay.drain()
            if bus.published() == before:
                return

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        self.clock._at = datetime.combine(day, day_time(hour, minute), UTC)  # noqa: SLF001 - the simulated clock

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        await self.runtime.start(self.units)
        try:
            await self._load_estate()
            days = self.plan.days()
            for index, day in enumerate(days):
                await self._day(day)
                if self._on_progress is not None:
                    self._on_progress(Progress(day, index + 1, len(days), await self.legacy(),
                                               self._targets.get(day, 0)))
            return await self._result(time.perf_counter() - started)
        finally:
            await self.runtime.stop()

    async def _load_estate(self) -> None:
        self.at(self.plan.start, 7)
        await self.inventory.import_rows(as_rows(generate(self.plan.seed, self.plan.estate())))
        await self.settle()

    async def legacy(self) -> int:
        """The legacy count now, as reporting has it (from the events alone)."""
        return int((await self.reporting.model.dimension(LEGACY_DIMENSION)).get("devices", 0))

    async def _day(self, day: date) -> None:
        self.at(day, 8)
        await self._apply_fixes(day)
        if day.weekday() == 0 or day == self.plan.start:
            await self._buy(day)
        await self._rollouts(day)
        await self.settle()
        legacy = await self.legacy()
        if day.weekday() == 0 or day == self.plan.start:
            await self._plan_wave(day, legacy)
        upgrades_today = await self._upgrades_due(day)
        await self._deliver_replacements(day, legacy - self._targets.get(day, 0) - upgrades_today)
        await self._dispose(day)
        await self.settle()
        for turn in range(MAX_TURNS):
            self.at(day, 9 + turn // 2, 30 * (turn % 2))
            await self.runtime.run_periodic_jobs(DAILY_JOBS)
            await self.settle()
            if not await self._sagas_running():
                break
        self.at(day, 20)
        if day.weekday() == 6 or day == self.plan.end:
            await self.runtime.run_periodic_jobs([j for j in self.runtime.periodic_jobs() if j != GAUGES_JOB])
            await self.settle()
        await self.runtime.relay.settle()  # the day's published entries cleared from their documents

    # -- applications fixed ----------------------------------------------------------------

    async def _apply_fixes(self, day: date) -> None:
        due = {a for a, d in self.plan.fixes.items() if d <= day} - self._state.fixed
        if not due:
            return
        policy = await self.migration.policy()
        spec = PolicySpec.model_validate(policy.model_dump(include=set(PolicySpec.model_fields)))
        catalogue = dict(spec.catalogue)
        for app in due:
            if app in catalogue:
                catalogue[app] = catalogue[app].model_copy(update={"compatibility": Compatibility.COMPATIBLE})
        await self.migration.set_policy(spec.model_copy(update={"catalogue": catalogue}))
        self._state.fixed |= due
        await self.settle()

    # -- buying ----------------------------------------------------------------------------

    async def _contract(self, framework_id: str, day: date) -> str:
        """The call-off to buy through: awarded when none runs today (24 months each)."""
        current = self._state.contracts.get(framework_id)
        if current is not None:
            contract = await self.procurement.contract(current)
            if contract.start <= day <= contract.end - timedelta(days=7):
                return current
        framework = await self.procurement.framework(framework_id)
        lot = next(lot for lot in framework.lots if SpendCategory.END_USER_DEVICES in lot.categories)
        route = AwardRoute.DIRECT_AWARD if AwardRoute.DIRECT_AWARD in lot.routes else lot.routes[0]
        contract_id = f"CO-{framework_id}-{day:%Y%m}"
        await self.procurement.award(AwardSpec(
            contract_id=contract_id, title=f"End-user devices ({framework.name}) from {day:%B %Y}",
            framework_id=framework_id, lot=lot.name, supplier=f"{framework.name} device supplier",
            category=SpendCategory.END_USER_DEVICES, classification=SpendClass.MODERN, route=route,
            value_pence=2_500_000_000, start=day, initial_term_months=min(24, framework.initial_term_months)))
        self._state.contracts[framework_id] = contract_id
        return contract_id

    async def _through_approval(self, request_id: str, day: date, framework_id: str, price: int,
                                kind: DeviceKind) -> Any:
        contract_id = await self._contract(framework_id, day)
        request = await self.procurement.submit(
            request_id, Submission(model=MODEL[kind], unit_price_pence=price, contract_id=contract_id),
            PEOPLE["requester"], None)
        for by in PEOPLE["approvers"]:
            if request.state is RequestState.SUBMITTED and request.required is not None and \
                    sum(a.kind is ApprovalKind.APPROVER for a in request.approvals) < request.required.approvers:
                request = await self.procurement.approve(request_id, by, ApprovalKind.APPROVER, None)
        required = request.required
        if required is not None and required.board and request.state is RequestState.SUBMITTED:
            request = await self.procurement.approve(request_id, PEOPLE[ApprovalKind.BOARD], ApprovalKind.BOARD, None)
        if required is not None and required.spend_control and request.state is RequestState.SUBMITTED:
            request = await self.procurement.approve(request_id, PEOPLE[ApprovalKind.SPEND_CONTROL],
                                                     ApprovalKind.SPEND_CONTROL, None)
        request = await self.procurement.order(request_id, None)
        self._state.orders += 1
        return request

    async def _buy(self, day: date) -> None:
        """Each Monday: every replacement draft migration's needs have filled is submitted,
        approved and ordered through the replacement framework; its lines are due after the
        lead time."""
        drafts = [r async for r in self.procurement.requests_in(RequestState.DRAFT) if r.needs]
        for draft in sorted(drafts, key=lambda r: r.request_id):
            ordered = await self._through_approval(draft.request_id, day, draft.framework_id,
                                                   UNIT_PRICE_PENCE[draft.kind], draft.kind)
            due = day + timedelta(days=self.plan.lead_days)
            self._state.waiting.extend(_Line(n.need_id, n.site, n.borough, draft.kind, ordered.request_id, due)
                                       for n in ordered.needs for _ in range(n.quantity))

    def _tags(self, kind: DeviceKind, n: int) -> list[str]:
        first = self._state.next_tag.get(kind, 1)
        self._state.next_tag[kind] = first + n
        return [f"{TAG_PREFIX[kind]}-{i:06d}" for i in range(first, first + n)]

    def _items(self, kind: DeviceKind, n: int) -> list[DeliveredItem]:
        return [DeliveredItem.model_validate({"asset_tag": tag, "serial_number": f"SN{tag.replace('-', '')}",
                                              "os": OS[kind], "hardware": HARDWARE[kind]})
                for tag in self._tags(kind, n)]

    async def _deliver(self, request_id: str, kind: DeviceKind, site: str, borough: str | None, n: int,
                       unit: str = "Territorial Policing") -> None:
        for start in range(0, n, 5000):
            items = self._items(kind, min(5000, n - start))
            location = {"site": site, "borough": borough, "unit": unit if borough else "Met Headquarters"}
            await self.procurement.deliver(request_id, DeliveryNote.model_validate(
                {"location": location, "devices": [i.model_dump() for i in items]}), None)

    async def _deliver_replacements(self, day: date, wanted: int) -> None:
        """Deliver up to ``wanted`` replacements due by today, grouped by site; migration pairs
        each with a device awaiting one there, and inventory retires the old device."""
        waiting = self._state.waiting
        lines: list[_Line] = []
        while waiting and len(lines) < wanted and waiting[0].due <= day:
            lines.append(waiting.popleft())
        by_site: dict[tuple[str, str, str | None, DeviceKind], list[_Line]] = {}
        for line in lines:
            by_site.setdefault((line.request_id, line.site, line.borough, line.kind), []).append(line)
        for (request_id, site, borough, kind), group in by_site.items():
            unit = "Territorial Policing" if borough else next(
                (u for s, u in CENTRAL_UNITS if s == site), "Met Headquarters")
            await self._deliver(request_id, kind, site, borough, len(group), unit)
            later = day + timedelta(days=self.plan.disposal_after_days)
            self._state.to_dispose.extend((later, line.need_id.removeprefix("NEED-")) for line in group)

    async def _dispose(self, day: date) -> None:
        """Replaced devices whose time has come are sanitised and disposed of (inventory
        disposes on migration's event); one not replaced yet waits for a later day."""
        due = [(d, t) for d, t in self._state.to_dispose if d <= day]
        self._state.to_dispose = [(d, t) for d, t in self._state.to_dispose if d > day]
        for _, tag in due:
            record = Sanitisation(method="NIST 800-88 purge", certificate_id=f"SAN-{tag}", performed_on=day,
                                  operator="Accredited disposals contractor")
            try:
                await self.migration.request_disposal(tag, record, None)
            except Conflict:
                self._state.to_dispose.append((day + timedelta(days=7), tag))

    async def _rollouts(self, day: date) -> None:
        """New devices to people: each rollout's request is raised and ordered a lead time
        before its first tranche, then a tranche a month, spread over the boroughs."""
        for rollout in self.plan.rollouts:
            quantity = self.plan.scaled(rollout.quantity)
            if quantity <= 0:
                continue
            request_id = await self._rollout_request(rollout, quantity, day)
            if request_id is None:
                continue
            amounts = tranches(quantity, rollout.months)
            for month, amount in enumerate(amounts):
                if day != _add_months(rollout.first_delivery, month) or amount == 0:
                    continue
                boroughs = list(rollout.boroughs or LONDON_BOROUGHS)
                for borough, n in spread(amount, boroughs).items():
                    await self._deliver(request_id, rollout.kind, f"{borough} Police Station", borough, n)

    async def _rollout_request(self, rollout: Any, quantity: int, day: date) -> str | None:
        key = f"rollout:{rollout.name}"
        known = self._state.contracts.get(key)
        order_day = rollout.first_delivery - timedelta(days=self.plan.lead_days)
        if known is not None:
            return known
        if day < order_day:
            return None
        request = await self.procurement.raise_request(RequestSpec(
            kind=rollout.kind, quantity=quantity, framework_id=rollout.framework_id))
        await self._through_approval(request.request_id, day, rollout.framework_id, UNIT_PRICE_PENCE[rollout.kind],
                                     rollout.kind)
        self._state.contracts[key] = request.request_id
        return str(request.request_id)

    # -- waves -----------------------------------------------------------------------------

    async def _plan_wave(self, day: date, legacy: int) -> None:
        """The week's wave: its share of the fall the plan wants by next Monday, over every
        borough and central site, at the daily capacity that does it in seven days."""
        target = self._targets.get(day + timedelta(days=6), 0)
        devices, capacity = weekly_wave(legacy - target, self.plan.upgrade_share, final=target == 0)
        self._state.wave = None
        if devices <= 0:
            return
        boroughs = [row[0] for row in (await self.reporting.table("boroughs")).rows
                    if row[0] != "central" and row[2] > 0]
        sites = [site for site, _ in CENTRAL_UNITS if await self.migration.sites.get(site) is not None]
        spec = WaveSpec.model_validate({
            "name": f"Week of {day.isoformat()}", "sites": sites, "boroughs": boroughs, "kinds": ["desktop"],
            "start_date": day, "daily_capacity": capacity, "max_devices": devices})
        try:
            wave = await self.migration.plan_wave(spec)
        except (InvalidInput, Conflict):
            return  # nothing ready to upgrade in place: replacements and fixes carry the fall
        self._state.wave = (wave.wave_id, len(wave.devices), wave.daily_capacity)
        self._state.open_waves.add(wave.wave_id)
        self._state.waves += 1

    async def _upgrades_due(self, day: date) -> int:
        if self._state.wave is None:
            return 0
        wave_id, _, capacity = self._state.wave
        wave = await self.migration.wave(wave_id)
        return max(0, min(capacity, len(wave.devices) - wave.started))

    async def _sagas_running(self) -> bool:
        """Whether a wave has devices mid-saga: the driver plans every wave, so it reads only
        those it planned that have not finished, by id."""
        running = False
        for wave_id in sorted(self._state.open_waves):
            wave = await self.migration.wave(wave_id)
            running = running or bool(wave.active)
            if wave.state in TERMINAL_WAVES and not wave.active:
                self._state.open_waves.discard(wave_id)
        return running

    # -- the result ------------------------------------------------------------------------

    async def _result(self, wall_s: float) -> ScenarioResult:
        summary = await self.reporting.summary()
        series = await self.reporting.legacy_series()
        legacy_by_day = dict(series)
        kinds = (await self.reporting.table("kinds")).rows
        deliveries = (await self.reporting.table("deliveries")).rows
        events = cast(_Settling, self.runtime.bus).published()
        return ScenarioResult(self.plan, _plain(summary), legacy_by_day, kinds, deliveries,
                              calibrate(legacy_by_day, self.plan, self.reporting.config.prices), events, wall_s,
                              self._state.waves, self._state.orders)


def _plain(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    return date(year, month % 12 + 1, min(day.day, 28))


def run_scenario(plan: ScenarioPlan, on_progress: Callable[[Progress], None] | None = None,
                 settings: Settings | None = None) -> ScenarioResult:
    """The scenario on the embedded platform, or on the real stack ``settings`` name
    (``mode=distributed``)."""
    return asyncio.run(ScenarioDriver(plan, on_progress=on_progress, settings=settings).run())

