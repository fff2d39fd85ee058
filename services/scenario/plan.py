"""The programme's plan and its calibration, pure (no I/O, no services running).

The scenario runs the Met's programme forward from April 2014. What it must reproduce are the
published figures (``services.reporting.cost.TRAJECTORY``): 35,000 Windows XP desktops in April
2014, 27,000 in August 2015, about 19,500 five months later, and extended support costing about
GBP 1.65m by then. The plan turns them into a day-by-day target for the legacy count (reporting's
own ``daily_trajectory``: the published counts, weekdays heavier than weekends, through every
published count exactly), continued to zero by ``finish_by``; the driver steers the migration
waves' daily capacity and the replacement deliveries to that target, and reporting measures what
actually happened from the events. ``calibrate`` compares reporting's series with the published
figures, scaled with the estate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta

from contracts.common import DeviceKind
from services.inventory.sample_estate import EstateSize
from services.reporting.cost import TRAJECTORY, SupportPrices, cost_to_date, daily_trajectory

PUBLISHED_COST_GBP = 1_650_000.0
"""Extended support paid by January 2016 (press coverage)."""
COST_ON = date(2016, 1, 1)
TOLERANCE_COUNT = 0.02
TOLERANCE_COST = 0.05

FIXES: dict[str, date] = {
    "MERLIN Vulnerable Persons": date(2015, 11, 30),
    "IDENT1 Livescan": date(2016, 2, 29),
    "Airwave Dispatch Console": date(2016, 6, 30),
    "NSPIS Custody": date(2016, 12, 31),
    "AWARE Command and Control": date(2017, 1, 31),
}
"""When each blocking application becomes compatible: the catalogue's expected fixes; AWARE has
none in the catalogue, so the scenario assumes its replacement goes live at the end of January
2017 (without one, its devices stay on XP and the programme never completes)."""

UNIT_PRICE_PENCE: dict[DeviceKind, int] = {
    DeviceKind.DESKTOP: 55_000, DeviceKind.LAPTOP: 65_000, DeviceKind.TABLET: 45_000,
    DeviceKind.BODY_WORN_CAMERA: 40_000}
MODEL: dict[DeviceKind, str] = {
    DeviceKind.DESKTOP: "HP EliteDesk 800 G1", DeviceKind.LAPTOP: "Lenovo ThinkPad T440",
    DeviceKind.TABLET: "Microsoft Surface 3", DeviceKind.BODY_WORN_CAMERA: "Axon Body"}


@dataclass(frozen=True, slots=True)
class Rollout:
    """New devices to people, bought through a framework and delivered in monthly tranches."""

    name: str
    kind: DeviceKind
    quantity: int
    framework_id: str
    first_delivery: date
    months: int
    boroughs: tuple[str, ...] | None = None
    """Where they go; None: every borough in the estate."""


PILOT_BOROUGH = "Hammersmith and Fulham"
ROLLOUTS: tuple[Rollout, ...] = (
    Rollout("Body-worn video pilot", DeviceKind.BODY_WORN_CAMERA, 1_000, "SPRINT-II", date(2014, 5, 8), 1,
            (PILOT_BOROUGH,)),
    Rollout("Front-line tablets", DeviceKind.TABLET, 15_000, "TECH-PRODUCTS", date(2015, 1, 12), 18),
    Rollout("Body-worn video force-wide", DeviceKind.BODY_WORN_CAMERA, 21_000, "SPRINT-II", date(2016, 10, 3), 6),
)
"""The pilot's 1,000 cameras in Hammersmith and Fulham (from May 2014), 15,000 front-line tablets,
then body-worn video force-wide (22,000 cameras in all, from October 2016)."""


@dataclass(frozen=True, slots=True)
class ScenarioPlan:
    seed: int = 2014
    scale: float = 1.0
    """Share of the estate (and of every published count) the run simulates: 0.05 is 1/20th."""
    start: date = TRAJECTORY[0][0]
    finish_by: date = date(2017, 3, 31)
    """The plan's last day of legacy devices (the extended-support agreement ends 8 April 2017)."""
    end: date = date(2017, 4, 8)
    upgrade_share: float = 0.6
    """Of each week's planned fall, the share taken by upgrades in place (the rest: replacements)."""
    lead_days: int = 21
    """From an order to its first delivery."""
    disposal_after_days: int = 14
    """From a replacement's delivery to the old device's sanitised disposal."""
    fixes: dict[str, date] = field(default_factory=lambda: dict(FIXES))
    rollouts: tuple[Rollout, ...] = ROLLOUTS

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ValueError("scale must be in (0, 1]")
        if not (self.start < self.finish_by and self.start < self.end):
            raise ValueError("the plan needs start < finish_by and start < end")

    def scaled(self, n: int) -> int:
        return round(n * self.scale)

    def estate(self) -> EstateSize:
        """The sample estate at this scale, without its cameras: the scenario buys the pilot."""
        full = EstateSize()
        size = EstateSize(**{f.name: self.scaled(getattr(full, f.name)) for f in fields(full)})
        return replace(size, cameras=0)

    def published(self) -> list[tuple[date, int]]:
        return [(d, self.scaled(n)) for d, n in TRAJECTORY]

    def targets(self) -> dict[date, int]:
        """The legacy count the plan aims at for the end of each day, ``start`` to ``end``."""
        points = [*self.published(), (self.finish_by, 0)]
        out = dict(daily_trajectory(points, self.seed))
        day = self.finish_by
        while day <= self.end:
            out[day] = 0
            day += timedelta(days=1)
        return out

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def weekly_wave(gap: int, share: float, *, final: bool = False) -> tuple[int, int]:
    """A week's wave for a planned fall of ``gap`` devices: (devices, daily capacity). Upgrades
    take ``share`` of it, replacements the rest; in the ``final`` week (the plan wants no legacy
    device left) the wave takes the whole gap, since replacements may not cover their share and
    nothing comes after it."""
    devices = max(0, gap if final else round(gap * share))
    return devices, max(1, math.ceil(devices / 7))


def tranches(total: int, months: int) -> list[int]:
    """``total`` split into ``months`` near-equal monthly deliveries."""
    base, extra = divmod(total, months)
    return [base + (1 if i < extra else 0) for i in range(months)]


def spread(total: int, places: list[str]) -> dict[str, int]:
    """``total`` devices over ``places`` (sorted), near-equally."""
    ordered = sorted(places)
    return {p: n for p, n in zip(ordered, tranches(total, len(ordered)), strict=True) if n}


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    on: date
    expected: float
    actual: float
    tolerance: float

    @property
    def error(self) -> float:
        return (self.actual - self.expected) / self.expected if self.expected else float(self.actual != 0)

    @property
    def ok(self) -> bool:
        return abs(self.error) <= self.tolerance


def calibrate(legacy_by_day: dict[date, float], plan: ScenarioPlan,
              prices: SupportPrices | None = None) -> list[Check]:
    """The published figures (scaled) against a legacy series (reporting's): the counts in August
    2015 and January 2016 within 2%, the extended-support cost by January 2016 within 5%; only
    those the series reaches (a run that stops earlier has nothing to compare yet)."""
    checks: list[Check] = []
    last = max(legacy_by_day, default=None)
    if last is None:
        return checks
    for on, expected in plan.published()[1:]:
        if on > last:
            continue
        checks.append(Check("legacy XP devices", on, expected, legacy_by_day.get(on, float("nan")),
                            TOLERANCE_COUNT))
    if COST_ON > last:
        return checks
    cost = cost_to_date(sorted(legacy_by_day.items()), prices or SupportPrices(), COST_ON)
    checks.append(Check("extended-support cost to date, GBP", COST_ON, PUBLISHED_COST_GBP * plan.scale, cost,
                        TOLERANCE_COST))
    return checks
