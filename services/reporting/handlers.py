"""Reporting's event handler and queries: project events into the read model; answer with the
programme's figures (now or as of a past date), cost, forecast, tables; replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.envelope import Envelope
from services.reporting.cost import SupportPrices, cost_per_week_of_delay, cost_to_date, spend_figures
from services.reporting.forecast import Forecast, ForecastSettings, forecast
from services.reporting.projection import Counters, Projector, flat, series
from services.reporting.replay import EventLog, ReplayReport, rebuild
from services.reporting.retarget import Hardware, Minimum, OsNeeds
from services.reporting.store import RawEvent, ReadModel
from services.runtime.bus import Message
from services.runtime.clock import Clock

PENCE = 100.0
TABLES = ("os", "boroughs", "kinds", "series", "blockers", "readiness", "waves", "saga", "spend", "contracts",
          "deliveries", "policy")
_POLICY_COLUMNS = ["target", "version", "target_support_ends", "longer_supported_alternative", "catalogue_size",
                   "blocking_applications"]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True, slots=True)
class Summary:
    as_of: date
    devices: int
    legacy_remaining: int
    legacy_at_start: int
    migrated: int
    retired: int
    disposed: int
    extended_support_cost_gbp: float
    cost_per_week_of_delay_gbp: float
    spend_committed_gbp: float
    spend_contracted_gbp: float
    budget_gbp: float
    budget_share_committed: float
    legacy_spend_share: float | None
    baseline_legacy_share: float
    savings_target_gbp: float
    forecast: Forecast | None
    forecast_note: str | None


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """What the events say about targets, for what-if planning with another one: the target in
    force and the force's minimum, the lifecycle table, the hardware of the legacy devices still
    in the estate, and the mean price of a delivered device (None: nothing delivered yet)."""

    target: str | None
    minimum: Minimum
    lifecycle: dict[str, OsNeeds]
    hardware: dict[Hardware, int]
    device_price_gbp: float | None


@dataclass
class ReportingConfig:
    prices: SupportPrices = field(default_factory=SupportPrices)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    budget_gbp: float = 200_000_000.0


def _prefixed(dims: dict[str, Counters], prefix: str) -> list[tuple[str, Counters]]:
    return sorted((d.removeprefix(prefix), c) for d, c in dims.items() if d.startswith(prefix))


def _int(value: float | None) -> int:
    return int(value or 0)


def _progress(c: Counters) -> float | None:
    was = c.get("was_legacy", 0)
    return round((was - c.get("legacy", 0)) / was, 4) if was else None


class ReportingHandlers:
    def __init__(self, model: ReadModel, projector: Projector, clock: Clock, config: ReportingConfig, *,
                 replay_model: ReadModel, log: Callable[[], EventLog], topics: tuple[str, ...]) -> None:
        self.model = model
        self.projector = projector
        self.clock = clock
        self.config = config
        self.replay_model = replay_model
        self._log = log
        self.topics = topics

    # -- events -------------------------------------------------------------------------------

    async def on_batch(self, messages: Sequence[Message]) -> None:
        """Consecutive messages of one topic partition (a single one when a batch failed and its
        messages are handled one by one)."""
        by_partition: dict[str, list[tuple[int, RawEvent]]] = {}
        for m in messages:
            envelope = Envelope.from_bytes(m.value)
            by_partition.setdefault(f"{m.topic}|{m.partition}", []).append(
                (m.offset, (envelope.id, envelope.type, envelope.data, envelope.time)))
        for partition, events in by_partition.items():
            await self.model.apply_batch(self.projector, partition, events)

    # -- figures ------------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock.now().date()

    async def legacy_series(self, until: date | None = None) -> list[tuple[date, float]]:
        until = until or self.today()
        points = series(await self.model.all_days(), [flat("estate", "legacy")], until=until)
        return [(d, c[flat("estate", "legacy")]) for d, c in points]

    async def forecast(self, as_of: date | None = None) -> tuple[Forecast | None, str | None]:
        points = await self.legacy_series(as_of)
        try:
            return forecast(points, self.config.forecast), None
        except ValueError as error:
            return None, str(error)

    async def summary(self, as_of: date | None = None) -> Summary:
        day = as_of or self.today()
        dims = await self.model.dimensions_as_of(as_of)
        estate, spend = dims.get("estate", {}), dims.get("spend", {})
        legacy = await self.legacy_series(day)
        committed = spend.get("committed_pence", 0) / PENCE
        contracted = spend.get("contracted_pence", 0) / PENCE

        def classed(cls: str) -> float:
            """Spend is what is ordered (purchases, under a contract or not); a contract's value
            is a commitment shown apart (``spend_contracted_gbp``), never added to it: a purchase
            under a contract would count twice."""
            return dims.get(f"spend:class:{cls}", {}).get("committed_pence", 0) / PENCE

        money = spend_figures(committed, classed("legacy"), classed("modern"), self.config.budget_gbp)
        result, note = await self.forecast(as_of)
        return Summary(
            as_of=day, devices=_int(estate.get("devices")), legacy_remaining=_int(estate.get("legacy")),
            legacy_at_start=_int(estate.get("was_legacy")), migrated=_int(estate.get("migrated")),
            retired=_int(estate.get("retired")), disposed=_int(estate.get("disposed")),
            extended_support_cost_gbp=round(cost_to_date(legacy, self.config.prices, day), 2),
            cost_per_week_of_delay_gbp=round(
                cost_per_week_of_delay(estate.get("legacy", 0), self.config.prices, day), 2),
            spend_committed_gbp=committed, spend_contracted_gbp=contracted, budget_gbp=money.budget_gbp,
            budget_share_committed=round(money.share_of_budget, 6), legacy_spend_share=money.legacy_share,
            baseline_legacy_share=money.baseline_legacy_share, savings_target_gbp=money.savings_target_gbp,
            forecast=result, forecast_note=note)

    async def target_facts(self) -> TargetFacts:
        dims = await self.model.dimensions_as_of(None)
        policy = dims.get("policy", {})
        target = next((name for name, t in _prefixed(dims, "policy:target:") if t.get("in_force")), None)
        lifecycle = {name: OsNeeds(name, date.fromordinal(_int(c.get("support_ends_ordinal"))),
                                   _int(c.get("min_ram_mb")), _int(c.get("min_disk_gb")),
                                   frozenset(f.removeprefix("arch:") for f, v in c.items()
                                             if f.startswith("arch:") and v > 0))
                     for name, c in _prefixed(dims, "policy:os:") if c.get("support_ends_ordinal")}
        hardware = {Hardware.parse(key): _int(c.get("legacy")) for key, c in _prefixed(dims, "hardware:")
                    if c.get("legacy")}
        delivered = dims.get("deliveries", {})
        devices = delivered.get("devices", 0) if delivered.get("value_pence") else 0  # none priced: no price
        return TargetFacts(target, Minimum(_int(policy.get("min_ram_mb")), _int(policy.get("min_disk_gb")),
                                           _int(policy.get("min_cpu_cores"))), lifecycle, hardware,
                           round(delivered.get("value_pence", 0) / PENCE / devices, 2) if devices else None)

    async def table(self, name: str, as_of: date | None = None) -> Table:
        if name == "series":
            return await self._series_table(as_of)
        dims = await self.model.dimensions_as_of(as_of)
        build = getattr(self, f"_table_{name}")
        return build(dims)  # type: ignore[no-any-return]

    async def _series_table(self, until: date | None) -> Table:
        days = await self.model.all_days()
        os_fields = sorted({k for _, c in days for k in c if k.startswith("os:") and k.endswith("|devices")})
        wanted = [flat("estate", "devices"), flat("estate", "legacy"), flat("estate", "migrated"), *os_fields]
        points = series(days, wanted, until=until or self.today())
        columns = ["day", "devices", "legacy", "migrated", *(f.removesuffix("|devices") for f in os_fields)]
        return Table("series", columns, [[d.isoformat(), *(_int(c[f]) for f in wanted)] for d, c in points])

    @staticmethod
    def _table_os(dims: dict[str, Counters]) -> Table:
        rows = [[*name.split(":", 1), _int(c.get("devices"))] for name, c in _prefixed(dims, "os:")]
        return Table("os", ["family", "version", "devices"], rows)

    @staticmethod
    def _progress_rows(dims: dict[str, Counters], prefix: str) -> list[list[Any]]:
        return [[name, _int(c.get("devices")), _int(c.get("legacy")), _int(c.get("was_legacy")),
                 _int(c.get("migrated")), _int(c.get("retired")), _int(c.get("disposed")), _progress(c)]
                for name, c in _prefixed(dims, prefix)]

    _PROGRESS = ["devices", "legacy", "legacy_at_start", "migrated", "retired", "disposed", "progress"]

    def _table_boroughs(self, dims: dict[str, Counters]) -> Table:
        return Table("boroughs", ["borough", *self._PROGRESS], self._progress_rows(dims, "borough:"))

    def _table_kinds(self, dims: dict[str, Counters]) -> Table:
        return Table("kinds", ["kind", *self._PROGRESS], self._progress_rows(dims, "kind:"))

    @staticmethod
    def _table_blockers(dims: dict[str, Counters]) -> Table:
        """Ranked by what fixing the application alone would unblock: devices, then sites, then waves."""
        rows: list[tuple[str, int, int, int, int]] = []
        for app, c in _prefixed(dims, "blocker:"):
            sites = sum(1 for f, v in c.items() if f.startswith("site:") and v > 0)
            waves = sum(1 for f, v in c.items() if f.startswith("wave:") and v > 0)
            rows.append((app, _int(c.get("unblocks")), sites, waves, _int(c.get("devices"))))
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], -r[4], r[0]))
        return Table("blockers", ["rank", "application", "unblocks_devices", "unblocks_sites", "unblocks_waves",
                                  "blocked_devices"], [[i + 1, *r] for i, r in enumerate(rows)])

    @staticmethod
    def _table_readiness(dims: dict[str, Counters]) -> Table:
        return Table("readiness", ["outcome", "devices"],
                     [[o, _int(c.get("devices"))] for o, c in _prefixed(dims, "readiness:")])

    @staticmethod
    def _table_waves(dims: dict[str, Counters]) -> Table:
        """Each wave's devices by saga state (from the device events), its own state, daily
        capacity and expected end (from the wave events), and its success rate."""
        states = ["scheduled", "in_progress", "migrated", "failed", "unscheduled"]
        rows = []
        for w, c in _prefixed(dims, "wave:"):
            state = next((f.removeprefix("state:") for f, v in c.items() if f.startswith("state:") and v > 0), None)
            end = _int(c.get("expected_end_ordinal"))
            devices = _int(c.get("devices"))
            rows.append([w, state, _int(c.get("daily_capacity")), date.fromordinal(end).isoformat() if end else None,
                         devices, *(_int(c.get(s)) for s in states),
                         round(c.get("migrated", 0) / devices, 4) if devices else None])
        return Table("waves", ["wave", "state", "daily_capacity", "expected_end", "devices", *states,
                               "success_rate"], rows)

    @staticmethod
    def _table_policy(dims: dict[str, Counters]) -> Table:
        """The migration policy in force: target, version, the target's end of support, whether
        a longer-supported alternative was flagged, the catalogue and its blocking applications."""
        c = dims.get("policy", {})
        if not c:
            return Table("policy", _POLICY_COLUMNS, [])
        target = next((name for name, t in _prefixed(dims, "policy:target:") if t.get("in_force")), None)
        ends = _int(c.get("target_support_ends_ordinal"))
        return Table("policy", _POLICY_COLUMNS, [[target, _int(c.get("version")),
                                                  date.fromordinal(ends).isoformat() if ends else None,
                                                  bool(c.get("warning")), _int(c.get("catalogue_size")),
                                                  _int(c.get("blocking_applications"))]])

    @staticmethod
    def _table_saga(dims: dict[str, Counters]) -> Table:
        c = dims.get("saga", {})
        rows = [[f.removeprefix("failed_step:"), _int(v)] for f, v in sorted(c.items()) if f.startswith("failed_step:")]
        rows.append(["rolled_back", _int(c.get("rolled_back"))])
        return Table("saga", ["failure", "count"], rows)

    @staticmethod
    def _table_spend(dims: dict[str, Counters]) -> Table:
        rows = []
        for prefix, dimension in (("spend:framework:", "framework"), ("spend:category:", "category"),
                                  ("spend:class:", "class")):
            for name, c in _prefixed(dims, prefix):
                rows.append([dimension, name, c.get("committed_pence", 0) / PENCE,
                             c.get("delivered_pence", 0) / PENCE, c.get("contracted_pence", 0) / PENCE,
                             c.get("pipeline_pence", 0) / PENCE, _int(c.get("orders")), _int(c.get("contracts"))])
        return Table("spend", ["by", "name", "committed_gbp", "delivered_gbp", "contracted_gbp", "pipeline_gbp",
                               "orders", "contracts"], rows)

    def _table_contracts(self, dims: dict[str, Counters]) -> Table:
        today = self.today()
        this_month = today.year * 12 + today.month - 1

        def window(month: str) -> str:
            year, m = (int(x) for x in month.split("-"))
            ahead = year * 12 + m - 1 - this_month
            if ahead < 0:
                return "expired"
            return "0-3 months" if ahead < 3 else "3-6 months" if ahead < 6 else \
                "6-12 months" if ahead < 12 else "over 12 months"

        totals: dict[str, list[float]] = {}
        for month, c in _prefixed(dims, "contracts:end:"):
            t = totals.setdefault(window(month), [0, 0.0])
            t[0] += c.get("contracts", 0)
            t[1] += c.get("contracted_pence", 0) / PENCE
        order = ["expired", "0-3 months", "3-6 months", "6-12 months", "over 12 months"]
        return Table("contracts", ["expires", "contracts", "value_gbp"],
                     [[w, _int(totals[w][0]), totals[w][1]] for w in order if w in totals])

    @staticmethod
    def _table_deliveries(dims: dict[str, Counters]) -> Table:
        return Table("deliveries", ["framework", "deliveries", "devices", "value_gbp"],
                     [[f, _int(c.get("deliveries")), _int(c.get("devices")), c.get("value_pence", 0) / PENCE]
                      for f, c in _prefixed(dims, "deliveries:framework:")])

    # -- replay -------------------------------------------------------------------------------

    async def replay(self) -> tuple[ReplayReport, list[str]]:
        """Rebuild a fresh read model from the topics; the differences from the live one
        (empty when the live model has caught up with the same events)."""
        report = await rebuild(self._log(), self.topics, self.projector, self.replay_model)
        return report, await differences(self.model, self.replay_model)


async def differences(live: ReadModel, replayed: ReadModel, limit: int = 20) -> list[str]:
    a, b = await live.snapshot(), await replayed.snapshot()
    out = []
    for part in ("dimensions", "days", "entities"):
        for key in sorted(a[part].keys() | b[part].keys()):
            if a[part].get(key) != b[part].get(key):
                out.append(f"{part}/{key}: live {a[part].get(key)!r} != replay {b[part].get(key)!r}")
                if len(out) >= limit:
                    return out
    return out
