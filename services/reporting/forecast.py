"""When the legacy devices will be gone, pure.

Method: a block bootstrap (Monte Carlo) over the observed burn-down. The last ``window_days``
of the daily legacy count give the devices that left each day; they are cut into weeks (so
a week's rhythm - quiet weekends - stays whole), and each of ``runs`` futures draws weeks at
random, with replacement, until the remaining devices are gone. The 50/85/95% completion
dates are those futures' percentiles; the probability of meeting the deadline is the share
of futures that end on or before it. The random generator has a fixed seed, so the same
data always gives the same figures. A future that has not finished within ``horizon_days``
counts as not finishing (its percentile is then None: "not within the horizon").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from services.reporting.cost import SUPPORT_END

WEEK = 7
BLOCK = 32
"""Weeks of the futures summed at a time (a future that is done needs no more)."""


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    window_days: int = 90
    runs: int = 10_000
    seed: int = 2014
    horizon_days: int = 3650
    deadline: date = SUPPORT_END


@dataclass(frozen=True, slots=True)
class Forecast:
    as_of: date
    remaining: int
    method: str
    window_days: int
    mean_daily_rate: float
    p50: date | None
    p85: date | None
    p95: date | None
    deadline: date
    probability_by_deadline: float
    days_left_p50: int | None


def _weekly_falls(series: Sequence[tuple[date, float]], window_days: int) -> np.ndarray:
    if not series:
        raise ValueError("the forecast needs a daily legacy count; there is none yet")
    counts = np.array([c for _, c in sorted(series)][-(window_days + 1):], dtype=float)
    falls = -np.diff(counts)
    usable = len(falls) - len(falls) % WEEK
    if usable < WEEK:
        raise ValueError(f"the forecast needs at least {WEEK + 1} days of data, got {len(counts)}")
    return np.asarray(falls[len(falls) - usable:].reshape(-1, WEEK))


def _finishing_days(series: Sequence[tuple[date, float]], settings: ForecastSettings) -> tuple[np.ndarray, int, float]:
    """Days from the last observation until each future's legacy count reaches zero (inf when
    not within the horizon), the remaining count, the mean daily rate."""
    weeks = _weekly_falls(series, settings.window_days)
    remaining = int(round(sorted(series)[-1][1]))
    mean_rate = float(weeks.mean())
    if remaining <= 0:
        return np.zeros(settings.runs), remaining, mean_rate
    rng = np.random.default_rng(settings.seed)
    max_weeks = settings.horizon_days // WEEK + 1
    draws = rng.integers(0, len(weeks), size=(settings.runs, max_weeks))
    within = weeks.cumsum(axis=1)
    weekly = within[:, -1]
    # The running total of each future, BLOCK weeks at a time, only for the futures not done
    # yet: most finish long before the horizon. The sums run in the same order as one cumsum
    # over every week would, so the figures are the same.
    finished = np.zeros(settings.runs, dtype=bool)
    week = np.zeros(settings.runs, dtype=np.int64)
    before = np.zeros(settings.runs)
    carry = np.zeros(settings.runs)
    open_runs = np.arange(settings.runs)
    best = max(float(weekly.max()), 0.0)
    for first in range(0, max_weeks, BLOCK):
        # a future that cannot get there even with its best week every week never finishes
        open_runs = open_runs[carry[open_runs] + best * (max_weeks - first) >= remaining]
        if not len(open_runs):
            break
        block = weekly[draws[:, first:first + BLOCK][open_runs]]
        gone = np.hstack((carry[open_runs, None], block)).cumsum(axis=1)
        done = gone[:, 1:] >= remaining
        hit = done.any(axis=1)
        at = done.argmax(axis=1)
        ending = open_runs[hit]
        finished[ending] = True
        week[ending] = first + at[hit]
        before[ending] = gone[hit, at[hit]]
        carry[open_runs] = gone[:, -1]
        open_runs = open_runs[~hit]
    runs = np.arange(settings.runs)
    before = np.where(week > 0, before, 0.0)
    rows = within[draws[runs, week]]
    day_in_week = (rows >= (remaining - before)[:, None]).argmax(axis=1) + 1
    days = np.where(finished, week * WEEK + day_in_week, np.inf).astype(float)
    days[days > settings.horizon_days] = np.inf
    return days, remaining, mean_rate


def forecast(series: Sequence[tuple[date, float]], settings: ForecastSettings = ForecastSettings()) -> Forecast:
    """The completion forecast from a daily legacy series (end-of-day counts, one per day)."""
    days, remaining, rate = _finishing_days(series, settings)
    as_of = sorted(series)[-1][0]

    ordered = np.sort(days)

    def at(p: float) -> date | None:  # nearest rank: defined when some futures never finish
        value = float(ordered[max(0, int(np.ceil(p / 100 * len(ordered))) - 1)])
        return as_of + timedelta(days=int(np.ceil(value))) if np.isfinite(value) else None

    by_deadline = float(np.mean(days <= (settings.deadline - as_of).days))
    p50 = at(50)
    return Forecast(
        as_of=as_of, remaining=remaining,
        method=(f"block bootstrap of weekly burn-down over the last {settings.window_days} days, "
                f"{settings.runs} runs, seed {settings.seed}"),
        window_days=settings.window_days, mean_daily_rate=rate, p50=p50, p85=at(85), p95=at(95),
        deadline=settings.deadline, probability_by_deadline=by_deadline,
        days_left_p50=(p50 - as_of).days if p50 else None)


@dataclass(frozen=True, slots=True)
class RemainingInterval:
    on: date
    low: float
    median: float
    high: float


def remaining_on(series: Sequence[tuple[date, float]], on: date, settings: ForecastSettings = ForecastSettings(),
                 coverage: float = 0.90) -> RemainingInterval:
    """The interval the same futures give for the legacy count on a later date (the backtest
    compares it with what was then counted)."""
    ordered = sorted(series)
    ahead = (on - ordered[-1][0]).days
    if ahead < 1:
        raise ValueError("the date must be after the last observation")
    weeks = _weekly_falls(ordered, settings.window_days)
    rng = np.random.default_rng(settings.seed)
    draws = rng.integers(0, len(weeks), size=(settings.runs, ahead // WEEK + 1))
    gone = weeks[draws].reshape(settings.runs, -1)[:, :ahead].sum(axis=1)
    left = np.maximum(ordered[-1][1] - gone, 0)
    tail = (1 - coverage) / 2 * 100
    low, median, high = np.percentile(left, [tail, 50, 100 - tail])
    return RemainingInterval(on, float(low), float(median), float(high))
