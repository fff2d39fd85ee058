"""What waiting costs and where the money goes, pure.

Extended support is priced per legacy device per support year (the agreement's years run
from the day mainstream support ended, 8 April 2014); a day costs the year's price / 365 for
every legacy device at the end of that day. The default prices are calibrated so that the
programme's published trajectory (35,000 XP desktops in April 2014, 27,000 in August 2015,
19,500 in January 2016) costs about GBP 1.65m by January 2016, the figure reported then.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

SUPPORT_START = date(2014, 4, 8)
SUPPORT_END = date(2017, 4, 8)
"""When the extended-support agreement ends (the forecast's default deadline)."""
PRICES_GBP = (30.5, 36.5, 44.0)
"""Per legacy device per support year (year 1 from 8 April 2014); the last applies after."""
BUDGET_GBP = 200_000_000.0
SAVINGS_TARGET_SHARE = 0.30
BASELINE_LEGACY_SHARE = 0.80
"""Over 80% of the spend supported legacy systems when the strategy began."""

TRAJECTORY: tuple[tuple[date, int], ...] = (
    (date(2014, 4, 8), 35_000), (date(2015, 8, 1), 27_000), (date(2016, 1, 1), 19_500))
"""The published counts of Windows XP desktops the sample estate starts from."""


@dataclass(frozen=True, slots=True)
class SupportPrices:
    start: date = SUPPORT_START
    per_device_year_gbp: tuple[float, ...] = PRICES_GBP

    def __post_init__(self) -> None:
        if not self.per_device_year_gbp or any(p < 0 for p in self.per_device_year_gbp):
            raise ValueError("prices must be a non-empty list of amounts >= 0")

    def year_of(self, day: date) -> int:
        """0 for the first support year (from ``start``), 1 for the second, ..."""
        years = day.year - self.start.year - ((day.month, day.day) < (self.start.month, self.start.day))
        return max(0, years)

    def daily(self, day: date) -> float:
        prices = self.per_device_year_gbp
        return prices[min(self.year_of(day), len(prices) - 1)] / 365.0


def cost_to_date(legacy_by_day: Sequence[tuple[date, float]], prices: SupportPrices, until: date) -> float:
    """GBP paid for extended support from its start to ``until`` (inclusive) for the legacy
    devices counted at the end of each day (a day missing from the series keeps the count of
    the day before)."""
    total, count = 0.0, 0.0
    points = iter(sorted(legacy_by_day))
    upcoming = next(points, None)
    day = prices.start
    while upcoming is not None and upcoming[0] < day:
        count = upcoming[1]
        upcoming = next(points, None)
    while day <= until:
        while upcoming is not None and upcoming[0] <= day:
            count = upcoming[1]
            upcoming = next(points, None)
        total += count * prices.daily(day)
        day += timedelta(days=1)
    return total


def cost_per_week_of_delay(legacy_now: float, prices: SupportPrices, on: date) -> float:
    """What one more week with today's legacy devices costs."""
    return legacy_now * prices.daily(on) * 7


@dataclass(frozen=True, slots=True)
class SpendFigures:
    committed_gbp: float
    budget_gbp: float
    remaining_gbp: float
    share_of_budget: float
    legacy_share: float | None
    baseline_legacy_share: float
    savings_target_gbp: float


def spend_figures(committed_gbp: float, legacy_gbp: float, modern_gbp: float,
                  budget_gbp: float = BUDGET_GBP) -> SpendFigures:
    """Committed spend against the budget; the legacy share of what is classified, against
    the 80/20 baseline; the savings target (30% of the budget)."""
    classified = legacy_gbp + modern_gbp
    return SpendFigures(committed_gbp, budget_gbp, budget_gbp - committed_gbp, committed_gbp / budget_gbp,
                        legacy_gbp / classified if classified else None, BASELINE_LEGACY_SHARE,
                        budget_gbp * SAVINGS_TARGET_SHARE)


def linear_trajectory(points: Sequence[tuple[date, int]] = TRAJECTORY) -> list[tuple[date, float]]:
    """The legacy count each day, straight lines between the published counts."""
    out: list[tuple[date, float]] = []
    for (d0, n0), (d1, n1) in zip(points, points[1:], strict=False):
        span = (d1 - d0).days
        out.extend((d0 + timedelta(days=i), n0 + (n1 - n0) * i / span) for i in range(span))
    out.append((points[-1][0], float(points[-1][1])))
    return out


def daily_trajectory(points: Sequence[tuple[date, int]] = TRAJECTORY, seed: int = 2014) -> list[tuple[date, int]]:
    """The published counts as a day-by-day burn-down a programme would show: each stretch's
    fall spread over its days, weekdays heavier than weekends, with day-to-day noise; it
    passes through every published count exactly. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[tuple[date, int]] = [(points[0][0], points[0][1])]
    for (d0, n0), (d1, n1) in zip(points, points[1:], strict=False):
        days = [d0 + timedelta(days=i) for i in range(1, (d1 - d0).days + 1)]
        weights = [(1.0 if d.weekday() < 5 else 0.15) * rng.lognormvariate(0, 0.5) for d in days]
        falls = _allocate(n0 - n1, weights)
        count = n0
        for d, fall in zip(days, falls, strict=True):
            count -= fall
            out.append((d, count))
    return out


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` in whole numbers (largest remainders)."""
    scale = sum(weights)
    shares = [total * w / scale for w in weights]
    whole = [int(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: shares[i] - whole[i], reverse=True)
    for i in order[: total - sum(whole)]:
        whole[i] += 1
    return whole
